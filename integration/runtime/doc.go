// Package runtime is the black-box integration suite of berth-runtime. It
// drives the runtime binary as containerd or podman would (create, start,
// exec, state, kill, delete, ...) and checks what a caller can observe:
// outputs, exit codes, state JSON, files, cgroups and mounts.
//
// The suite can target any runc-compatible binary, so that runc serves as the
// oracle for berth's behaviour:
//
//	go test -tags seccomp -count=1 -p 1 ./integration/runtime/ -args -test.root               # bin/berth-runtime
//	RUNTIME=runc go test -tags seccomp -count=1 -p 1 ./integration/runtime/ -args -test.root  # runc from PATH
//	RUNTIME=/usr/bin/crun go test ...                                                         # any binary
//
// The tests need root (-test.root); each works in its own --root directory
// with container ids named after the test, and removes what it created.
package runtime
