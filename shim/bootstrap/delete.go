package bootstrap

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	taskapi "github.com/containerd/containerd/api/runtime/task/v2"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// RuntimeFile is where the task service records, in the bundle, which OCI
// runtime manages the container, so that `delete` can clean up after the
// shim died.
const RuntimeFile = "berth-runtime.json"

// RuntimeRecord is the content of RuntimeFile.
type RuntimeRecord struct {
	Binary string `json:"binary"`
	Root   string `json:"root"`
}

// Delete cleans up the container of a shim that is gone: the runtime
// force-deletes it and the rootfs is unmounted. It returns the
// DeleteResponse containerd reads from stdout: the container was killed.
func Delete(ctx context.Context, a Args) ([]byte, error) {
	var rec RuntimeRecord
	if data, err := os.ReadFile(filepath.Join(a.Bundle, RuntimeFile)); err == nil {
		if err := json.Unmarshal(data, &rec); err != nil {
			return nil, fmt.Errorf("%s: %w", RuntimeFile, err)
		}
	}
	if rec.Binary != "" {
		cmd := exec.CommandContext(ctx, rec.Binary, "--root", rec.Root, "delete", "--force", a.ID)
		if out, err := cmd.CombinedOutput(); err != nil && !containsNotExist(out) {
			return nil, fmt.Errorf("%s delete --force %s: %v: %s", rec.Binary, a.ID, err, out)
		}
	}
	rootfs := filepath.Join(a.Bundle, "rootfs")
	for unix.Unmount(rootfs, unix.MNT_DETACH) == nil {
	}
	return proto.Marshal(&taskapi.DeleteResponse{ExitedAt: timestamppb.New(time.Now()), ExitStatus: 128 + uint32(unix.SIGKILL)})
}

func containsNotExist(out []byte) bool {
	return strings.Contains(string(out), "not exist")
}
