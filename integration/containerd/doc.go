// Package containerd holds black-box interop tests: a private containerd
// (1.6 or later) and its ctr client run containers through containerd's own
// runc shim with berth-runtime as the shim's runc binary, the way a user
// would swap runc out. RUNTIME=runc runs the same tests against runc, the
// reference.
//
// One containerd serves the package run: it starts on the first test that
// runs with -test.root, in a temporary directory of its own (root, state,
// socket, runtime root, FIFOs), and TestMain stops it and cleans up after all
// tests. Each test works in its own containerd namespace. The daemon and ctr
// harness is integration/internal/ctrd, shared with integration/shim.
package containerd
