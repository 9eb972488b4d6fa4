// Package podman holds black-box interop tests: podman (4.3 or later, with
// conmon) runs containers with berth-runtime as its OCI runtime (--runtime).
// RUNTIME=runc runs the same tests against runc, the reference.
//
// Each test has storage, run state, locks, events and configuration of its
// own under a temporary directory (CONTAINERS_CONF, CONTAINERS_STORAGE_CONF,
// CONTAINERS_REGISTRIES_CONF, --root, --runroot, --tmpdir) and its own
// cgroup parent, and resets and removes them when it ends. Containers get no
// network.
package podman
