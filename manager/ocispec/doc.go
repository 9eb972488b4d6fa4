// Package ocispec turns an image's config and the options of `berth run` into
// the OCI runtime spec (config.json) that berth-runtime, runc or crun execute.
//
// berthd needs one place that decides what a container looks like from the
// inside, so that every path that creates a container (run, create, later
// CRI) gets the same answer, and so that answer can be tested without root.
// Generate is pure apart from reading the image's /etc/passwd and /etc/group
// (opened inside the rootfs with openat2 RESOLVE_IN_ROOT, so a symlink in the
// image cannot lead to a host file) and probing whether the host runs cgroup v2
// only.
//
// The defaults are docker's, as the OCI spec shapes them:
//   - command: ENTRYPOINT + CMD, run arguments replace CMD, --entrypoint
//     replaces ENTRYPOINT and clears the image's CMD;
//   - environment: PATH (default if unset), HOSTNAME, TERM=xterm with a TTY,
//     then the image's Env, then -e (same key replaced, later wins), and HOME
//     from the image's /etc/passwd when nobody set it;
//   - user: -u, else the image's USER, else root; the user's supplementary
//     groups come from the image's /etc/group, its primary gid first;
//   - namespaces pid, ipc, uts, mount, network (new, joined by path, or none
//     for the host network) and cgroup when the host is cgroup v2 only;
//   - mounts /proc, /dev, /dev/pts, /dev/shm (size from --shm-size, 64 MiB by
//     default), /dev/mqueue, /sys and /sys/fs/cgroup read-only; a user mount
//     at the same destination replaces the default one, a user mount at /dev
//     replaces every default under /dev, and mounts are ordered by depth;
//   - docker's 14 default capabilities in the bounding, effective and
//     permitted sets for root (bounding only for another uid, as execve would
//     leave them), --cap-add/--cap-drop with docker's rules, ALL for every
//     capability the kernel knows;
//   - docker's masked and read-only paths under /proc and /sys;
//   - the device cgroup denies everything but runc's default devices;
//   - no rlimits and no oom_score_adj unless asked for: root on the host
//     cannot raise a hard rlimit nor should berthd lower its own score.
//
// --privileged gives every capability, no masked or read-only paths, a
// writable /sys and /sys/fs/cgroup and an allow-all device cgroup.
//
// Seccomp: docker's default profile (moby/profiles/seccomp, fitted to the
// container's capabilities) unless --privileged or seccomp=unconfined.
//
// Known gaps: no AppArmor or SELinux labels (z and Z in -v are accepted and
// ignored); --privileged does not add the host's devices under /dev;
// --memory-swap is not defaulted to twice --memory as docker does where swap
// accounting exists; cgroupsPath is cgroupfs style only (no systemd slices);
// no user namespaces, --group-add, --device, --ipc, --pid, --uts or
// --cgroupns modes.
package ocispec
