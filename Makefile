# berth: build, install, test and benchmark.
# `make help` lists the targets.

PREFIX    ?= /usr/local
BINDIR    ?= $(PREFIX)/bin
GO        ?= go
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
# libcontainer's seccomp support is behind the "seccomp" build tag (cgo, libseccomp).
# netgo/osusergo keep glibc's NSS out of the static binary.
GOTAGS    ?= seccomp netgo osusergo
# Static: the runtime binary runs twice per container start (the command, then
# `init` in the new namespaces); without the dynamic loader each start saves
# its symbol resolution.
LDFLAGS   := -s -w -X github.com/berth-project/berth/runtime/cli.Version=$(VERSION) -linkmode external -extldflags -static
GOFLAGS_BUILD := -trimpath -tags '$(GOTAGS)' -ldflags '$(LDFLAGS)'

BINARIES  := berth-runtime containerd-shim-berth-v2 berth-snapshotter
# CNI plugins are named by their type and live where runtimes look for them.
CNI_PLUGINS := bridge host-local loopback portmap
CNI_BINDIR  ?= /opt/cni/bin
TESTFLAGS ?= -count=1 -timeout 30m
DEMO_DIR  ?= /tmp/berth-demo

.PHONY: all build install uninstall test test-oracle test-unit test-integration test-images bench demo lint clean help

all: build ## build every binary into bin/

build: $(addprefix bin/,$(BINARIES) $(CNI_PLUGINS))

# The runtime links libseccomp (cgo, static); the other binaries are pure Go.
bin/berth-runtime: FORCE
	$(GO) build $(GOFLAGS_BUILD) -o $@ ./cmd/berth-runtime

bin/%: FORCE
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '-s -w' -o $@ ./cmd/$*

FORCE:

install: build ## install the binaries into $(BINDIR) (PREFIX=/usr/local) and the CNI plugins into $(CNI_BINDIR)
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(CNI_BINDIR)
	install -m 0755 $(addprefix bin/,$(BINARIES)) $(DESTDIR)$(BINDIR)/
	install -m 0755 $(addprefix bin/,$(CNI_PLUGINS)) $(DESTDIR)$(CNI_BINDIR)/

uninstall: ## remove the installed binaries
	rm -f $(addprefix $(DESTDIR)$(BINDIR)/,$(BINARIES)) $(addprefix $(DESTDIR)$(CNI_BINDIR)/,$(CNI_PLUGINS))

# Packages whose tests use the -test.root gate get the flag; the rest run plain.
ROOT_PKGS = $(shell $(GO) list -f '{{.ImportPath}} {{join .TestImports " "}} {{join .XTestImports " "}}' ./... | awk '/integration\/testenv/ {print $$1}')
PLAIN_PKGS = $(filter-out $(ROOT_PKGS),$(shell $(GO) list ./...))

test: build ## run unit and integration tests, root tests enabled, and the runtime suite against runc (needs root)
	$(GO) vet -tags '$(GOTAGS)' ./...
	$(GO) test -tags '$(GOTAGS)' $(TESTFLAGS) $(PLAIN_PKGS)
	$(GO) test -tags '$(GOTAGS)' $(TESTFLAGS) -p 1 $(ROOT_PKGS) -args -test.root
	$(MAKE) test-oracle

test-oracle: ## run the runtime and shim suites against runc and containerd-shim-runc-v2, the oracles
	RUNTIME=runc $(GO) test -tags '$(GOTAGS)' $(TESTFLAGS) ./integration/runtime/ -args -test.root
	SHIM=runc $(GO) test -tags '$(GOTAGS)' $(TESTFLAGS) ./integration/shim/ -args -test.root

test-unit: ## run the tests that need no root
	$(GO) test -tags '$(GOTAGS)' $(TESTFLAGS) ./...

test-images: ## write the test image forms into _output/
	$(GO) run ./hack/mkimage -bundle _output/bundle -oci-layout _output/oci-layout \
		-oci-archive _output/berth-test.oci.tar -docker-archive _output/berth-test.docker.tar

bench: build ## benchmark berth-runtime vs runc and the shim vs containerd-shim-runc-v2, side by side (prints ratios)
	$(GO) run ./hack/bench runtime -runtime bin/berth-runtime
	$(GO) run ./hack/bench shim -shim-dir bin

demo: build ## run a container from a bundle with berth-runtime
	rm -rf $(DEMO_DIR)
	$(GO) run ./hack/mkimage -bundle $(DEMO_DIR) -- sh -c 'echo "hello from a berth container: $$(hostname), $$(cat /etc/berth-release)"; id'
	bin/berth-runtime run --bundle $(DEMO_DIR) berth-demo-$$$$
	rm -rf $(DEMO_DIR)

lint: ## gofmt and go vet
	@test -z "$$(gofmt -l $$(git ls-files '*.go' | grep -v '\.pb\.go$$'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet -tags '$(GOTAGS)' ./...

clean: ## remove build output
	rm -rf bin _output

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-18s %s\n", $$1, $$2}' $(MAKEFILE_LIST)
