// Package cni is the black-box integration suite of berth's CNI plugins. It
// drives the plugin binaries as a container runtime does, through libcni
// with network configuration lists, and mixes them with the reference
// plugins (Debian's containernetworking-plugins in /usr/lib/cni) in both
// directions: berth's bridge over the reference host-local, the reference
// bridge over berth's host-local, the reference bridge before berth's
// portmap and berth's bridge before the reference portmap, and berth's
// bridge chained with berth's loopback. It checks what a runtime and its
// containers see: results, addresses, routes, connectivity (busybox ping;
// a busybox httpd reached through published ports from the host, 127.0.0.1,
// another machine and another container, compared with what the reference
// pair does), addresses asked for with the ips capability, and that DEL
// and GC leave nothing behind. It also runs the binaries directly to check
// the spec errors they print for bad input.
//
// The binaries come from bin/ (make builds them; BERTH_BIN_DIR overrides);
// the reference plugins from /usr/lib/cni (CNI_REFERENCE_DIR overrides);
// the tests that need one skip when it is missing. Everything runs in
// throwaway network namespaces (integration/testenv/netenv), including the
// "host" side, where the bridges, sysctls and netfilter rules live, so the
// machine's own network is never touched:
//
//	go test -count=1 -p 1 ./integration/cni/ -args -test.root
package cni
