// Package berthd holds the black-box suite of berthd and the berth command
// line: each test starts its own berthd (bin/, from make; BERTH_BIN_DIR
// overrides) with its own --root, --state and -H in a temporary directory,
// drives it with the berth binary as a user would (version, info, system
// df, system prune, events), and checks what a user and an operator see:
// the messages and exit codes when the daemon is not running, two daemons
// side by side, a second daemon on a taken root refused, a clean shutdown
// on SIGTERM (socket removed, snapshotter gone), the snapshotter restarted
// when it is killed.
//
// Cleanup stops every process the test started by its PID (and the
// snapshotter berthd started, should it outlive berthd), unmounts what is
// left under the test's directory and removes it, also when the test fails.
package berthd
