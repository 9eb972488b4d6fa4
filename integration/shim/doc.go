// Package shim holds the black-box interop suite of containerd-shim-berth-v2:
// a private containerd (1.6 or later) and its ctr client run containers
// through the shim under test, and the tests check what a containerd user
// sees: exit codes, stdio and TTYs, exec, kill, pause, metrics, OOM, the
// task events and their order, and recovery when containerd restarts or
// the shim dies.
//
// SHIM selects the shim: unset or "berth" runs the runtime
// io.containerd.berth.v2, which containerd finds as containerd-shim-berth-v2
// in bin/ (make builds it; BERTH_BIN_DIR overrides), put on containerd's
// PATH; "runc" runs io.containerd.runc.v2, containerd's own
// containerd-shim-runc-v2, the reference the suite must pass against.
//
// RUNTIME_BINARY selects the OCI runtime the shim runs: unset or "berth"
// is bin/berth-runtime, "runc" is runc from PATH. It is the "runc" that
// both shims find first on their PATH (inherited from containerd's), a
// wrapper that logs each command line and execs the runtime. ctr 1.6 sends
// runc options (--runc-binary, --runc-root) only to a runtime named exactly
// io.containerd.runc.v2, so the tests of those options run that runtime
// name; with SHIM=berth, containerd-shim-runc-v2 on containerd's PATH is
// then the berth shim too, as a drop-in for runc's.
//
// One containerd serves the package run, but for the restart test, which
// has its own. Each test works in a containerd namespace of its own and its
// cleanup fails it for anything its containers left: shims, processes,
// cgroups, mounts.
package shim
