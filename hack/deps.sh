#!/bin/sh
# Installs what berth needs to build and test on Debian 12 (bookworm) or later:
# the C toolchain and libseccomp for libcontainer's cgo parts, busybox-static
# for the offline test image, protoc and the well-known .proto files for
# `make protos`, and the real programs the interop tests drive (runc,
# containerd, podman). Go >= 1.25 must be on PATH (the Debian package is
# older: use the toolchain from go.dev or /usr/local/go).
set -eu
export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends \
	gcc libc6-dev make git pkg-config libseccomp-dev \
	busybox-static iproute2 iptables procps time protobuf-compiler libprotobuf-dev \
	runc crun containerd podman conmon criu containernetworking-plugins docker-registry
if ! command -v go >/dev/null 2>&1; then
	echo "deps: go is not on PATH: install Go >= 1.25 (e.g. to /usr/local/go) and add it to PATH" >&2
	exit 1
fi
