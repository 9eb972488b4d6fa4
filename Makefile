# berth: build, install, test and benchmark.
# `make help` lists the targets.

PREFIX    ?= /usr/local
BINDIR    ?= $(PREFIX)/bin
GO        ?= go
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
GIT_COMMIT ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
# libcontainer's seccomp support is behind the "seccomp" build tag (cgo, libseccomp).
# netgo/osusergo keep glibc's NSS out of the static binary.
GOTAGS    ?= seccomp netgo osusergo
# Static: the runtime binary runs twice per container start (the command, then
# `init` in the new namespaces); without the dynamic loader each start saves
# its symbol resolution.
LDFLAGS   := -s -w -X github.com/berth-project/berth/runtime/cli.Version=$(VERSION) -linkmode external -extldflags -static
# berthd, berth and berth-snapshotter report these in `berth version`; -X is a
# no-op for binaries that do not link the package.
VERSION_LDFLAGS := -X github.com/berth-project/berth/manager/version.Version=$(VERSION) \
	-X github.com/berth-project/berth/manager/version.GitCommit=$(GIT_COMMIT) \
	-X github.com/berth-project/berth/snapshotter/cli.Version=$(VERSION)
GOFLAGS_BUILD := -trimpath -tags '$(GOTAGS)' -ldflags '$(LDFLAGS)'

BINARIES  := berth-runtime containerd-shim-berth-v2 berth-snapshotter berthd berth
# CNI plugins are named by their type and live where runtimes look for them.
CNI_PLUGINS := bridge host-local loopback portmap
CNI_BINDIR  ?= /opt/cni/bin
TESTFLAGS ?= -count=1 -timeout 30m
DEMO_DIR  ?= /tmp/berth-demo
SYSTEMD_UNITDIR ?= /etc/systemd/system

.PHONY: all build install install-systemd uninstall test test-oracle test-unit test-integration test-images bench demo lint clean help protos check-protos

all: build ## build every binary into bin/

build: $(addprefix bin/,$(BINARIES) $(CNI_PLUGINS))

# The runtime links libseccomp (cgo, static); the other binaries are pure Go.
bin/berth-runtime: FORCE
	$(GO) build $(GOFLAGS_BUILD) -o $@ ./cmd/berth-runtime

bin/%: FORCE
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '-s -w $(VERSION_LDFLAGS)' -o $@ ./cmd/$*

FORCE:

install: build ## install the binaries into $(BINDIR) (PREFIX=/usr/local) and the CNI plugins into $(CNI_BINDIR)
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(CNI_BINDIR)
	install -m 0755 $(addprefix bin/,$(BINARIES)) $(DESTDIR)$(BINDIR)/
	install -m 0755 $(addprefix bin/,$(CNI_PLUGINS)) $(DESTDIR)$(CNI_BINDIR)/

uninstall: ## remove the installed binaries (and the systemd unit, if installed)
	rm -f $(addprefix $(DESTDIR)$(BINDIR)/,$(BINARIES)) $(addprefix $(DESTDIR)$(CNI_BINDIR)/,$(CNI_PLUGINS))
	rm -f $(DESTDIR)$(SYSTEMD_UNITDIR)/berthd.service

install-systemd: ## install contrib/systemd/berthd.service (then: systemctl daemon-reload && systemctl enable --now berthd)
	install -d $(DESTDIR)$(SYSTEMD_UNITDIR)
	sed 's|^ExecStart=/usr/local/bin/berthd|ExecStart=$(BINDIR)/berthd|' contrib/systemd/berthd.service > $(DESTDIR)$(SYSTEMD_UNITDIR)/berthd.service
	chmod 0644 $(DESTDIR)$(SYSTEMD_UNITDIR)/berthd.service

# Packages whose tests use the -test.root gate (directly or through a shared
# suite such as snapshotter/testsuite) get the flag; the rest run plain.
ROOT_PKGS = $(shell $(GO) list -test -f '{{.ImportPath}} {{join .Deps " "}}' ./... | awk '$$1 ~ /\.test$$/ && / github.com\/berth-project\/berth\/integration\/testenv( |$$)/ {sub(/\.test$$/, "", $$1); print $$1}')
PLAIN_PKGS = $(filter-out $(ROOT_PKGS),$(shell $(GO) list ./...))

test: build check-protos ## run unit and integration tests, root tests enabled, and the runtime suite against runc (needs root)
	$(GO) vet -tags '$(GOTAGS)' ./...
	$(GO) test -tags '$(GOTAGS)' $(TESTFLAGS) $(PLAIN_PKGS)
	$(GO) test -tags '$(GOTAGS)' $(TESTFLAGS) -p 1 $(ROOT_PKGS) -args -test.root
	$(MAKE) test-oracle

test-oracle: ## run the runtime and shim suites against runc and containerd-shim-runc-v2, the oracles, and the shim's with runc as its runtime
	RUNTIME=runc $(GO) test -tags '$(GOTAGS)' $(TESTFLAGS) ./integration/runtime/ -args -test.root
	SHIM=runc $(GO) test -tags '$(GOTAGS)' $(TESTFLAGS) ./integration/shim/ -args -test.root
	RUNTIME_BINARY=runc $(GO) test -tags '$(GOTAGS)' $(TESTFLAGS) ./integration/shim/ -args -test.root

test-unit: ## run the tests that need no root
	$(GO) test -tags '$(GOTAGS)' $(TESTFLAGS) ./...

test-images: ## write the test image forms into _output/
	$(GO) run ./hack/mkimage -bundle _output/bundle -oci-layout _output/oci-layout \
		-oci-archive _output/berth-test.oci.tar -docker-archive _output/berth-test.docker.tar

bench: build ## benchmark each part against its counterpart side by side (runtime, shim, CNI, snapshotter, pull, idle daemon, run --rm; prints ratios)
	$(GO) run ./hack/bench runtime -runtime bin/berth-runtime
	$(GO) run ./hack/bench shim -shim-dir bin
	$(GO) run ./hack/bench cni -plugin-dir bin
	$(GO) run ./hack/bench snapshot -snapshotter bin/berth-snapshotter
	$(GO) run ./hack/bench pull
	$(GO) run ./hack/bench idle -bin bin
	$(GO) run ./hack/bench run -bin bin

demo: build ## run a container from a bundle with berth-runtime; start berthd and run containers through it with berth
	rm -rf $(DEMO_DIR)
	$(GO) run ./hack/mkimage -bundle $(DEMO_DIR) -- sh -c 'echo "hello from a berth container: $$(hostname), $$(cat /etc/berth-release)"; id'
	bin/berth-runtime run --bundle $(DEMO_DIR) berth-demo-$$$$
	rm -rf $(DEMO_DIR)
	@# A berthd of the demo's own (root, state, socket and bridge), so that it
	@# runs beside a berthd already serving; stopped by its PID at the end, its
	@# containers removed and its bridge deleted.
	@d=$(DEMO_DIR)-daemon; rm -rf $$d; mkdir -p $$d; host=unix://$$d/run/berthd.sock; b="bin/berth -H $$host"; \
	echo "+ bin/berthd --root $$d/root --state $$d/run -H $$host --bridge berthdemo0 --subnet 10.213.0.0/24 --cgroup-parent /berth-demo &"; \
	bin/berthd --root $$d/root --state $$d/run -H $$host --bridge berthdemo0 --subnet 10.213.0.0/24 --cgroup-parent /berth-demo 2>$$d/berthd.log & pid=$$!; \
	trap '$$b rm -f demo-web >/dev/null 2>&1; kill -TERM '$$pid' 2>/dev/null; wait '$$pid'; ip link del berthdemo0 2>/dev/null; find /sys/fs/cgroup -maxdepth 3 -depth -path "*/berth-demo*" -type d -exec rmdir {} + 2>/dev/null; rm -rf '$$d EXIT; \
	for i in $$(seq 100); do [ -S $$d/run/berthd.sock ] && break; kill -0 $$pid 2>/dev/null || break; sleep 0.1; done; \
	[ -S $$d/run/berthd.sock ] || { echo "berthd did not start:"; cat $$d/berthd.log; exit 1; }; \
	set -e; \
	echo "+ berth version"; $$b version; \
	$(GO) run ./hack/mkimage -docker-archive $$d/image.tar; \
	echo "+ berth load -i image.tar"; $$b load -i $$d/image.tar; \
	echo "+ berth run --rm berth-test sh -c '...'"; \
	$$b run --rm berth-test sh -c 'echo "hello from a container of berthd: $$(hostname), $$(ip -4 -o addr show eth0 | cut -d" " -f7)"'; \
	echo "+ berth run -d --name demo-web -p 127.0.0.1:18088:80 berth-test httpd ..."; \
	$$b run -d --name demo-web -p 127.0.0.1:18088:80 berth-test sh -c 'mkdir /www && echo "hello over http from demo-web" > /www/index.html && exec httpd -f -p 80 -h /www'; \
	$$b ps; \
	for i in $$(seq 50); do busybox wget -q -O - http://127.0.0.1:18088/ 2>/dev/null && break; sleep 0.1; done; \
	echo "+ berth exec demo-web cat /etc/hostname"; $$b exec demo-web cat /etc/hostname; \
	echo "+ berth rm -f demo-web"; $$b rm -f demo-web; \
	echo "+ kill -TERM $$pid (berthd)"

# berth's API: each .proto under proto/ with its generated Go beside it.
# protoc is Debian's protobuf-compiler (hack/deps.sh), the well-known types
# come from libprotobuf-dev, and the two plugins are the versions go.mod pins
# as tools, built into a temporary directory.
PROTOC        ?= protoc
PROTO_INCLUDE ?= /usr/include
PROTO_DIR     ?= proto

protos: ## regenerate the Go code of proto/ from its .proto files
	@tools=$$(mktemp -d) && trap 'rm -rf "$$tools"' EXIT && \
	$(GO) build -o "$$tools/" google.golang.org/protobuf/cmd/protoc-gen-go github.com/containerd/ttrpc/cmd/protoc-gen-go-ttrpc && \
	cd $(PROTO_DIR) && files=$$(find . -name '*.proto' | sed 's|^\./||' | LC_ALL=C sort) && \
	echo protoc $$files && \
	$(PROTOC) -I . -I $(PROTO_INCLUDE) \
		--plugin=protoc-gen-go="$$tools/protoc-gen-go" --go_out=. --go_opt=paths=source_relative \
		--plugin=protoc-gen-go-ttrpc="$$tools/protoc-gen-go-ttrpc" --go-ttrpc_out=. --go-ttrpc_opt=paths=source_relative \
		$$files

check-protos: ## fail if regenerating proto/ would change the committed generated code
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	cp -r proto "$$tmp/" && find "$$tmp/proto" -name '*.pb.go' -delete && \
	$(MAKE) --no-print-directory protos PROTO_DIR="$$tmp/proto" >/dev/null && \
	if ! diff -r proto "$$tmp/proto"; then echo "check-protos: the generated code in proto/ is stale: run 'make protos'" >&2; exit 1; fi

lint: ## gofmt and go vet
	@test -z "$$(gofmt -l $$(git ls-files '*.go' | grep -v '\.pb\.go$$'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet -tags '$(GOTAGS)' ./...

clean: ## remove build output
	rm -rf bin _output

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-18s %s\n", $$1, $$2}' $(MAKEFILE_LIST)
