// Package snapshotter holds the black-box interop suite of
// berth-snapshotter: the real containerd (1.6 or later) uses it as a proxy
// plugin ([proxy_plugins.berth], type "snapshot") and ctr drives it the
// way a user would: image import and unpack into it, containers run on its
// snapshots (through containerd's runc shim, and through berth's shim),
// and the ctr snapshot commands (ls, info, label, prepare, mounts, usage,
// rm), including an image of more than 100 layers.
//
// Each test starts its own berth-snapshotter (bin/, from make; BERTH_BIN_DIR
// overrides) and its own containerd, in temporary directories; its cleanup
// stops both by PID, unmounts what is left and removes the directories.
// It also talks to the snapshotter's socket directly (through
// snapshotter/proxy) to check what containerd asked of it.
package snapshotter
