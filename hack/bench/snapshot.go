package main

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	diffapi "github.com/containerd/containerd/api/services/diff/v1"
	leasesapi "github.com/containerd/containerd/api/services/leases/v1"
	snapshotsapi "github.com/containerd/containerd/api/services/snapshots/v1"
	apitypes "github.com/containerd/containerd/api/types"
	"github.com/klauspost/compress/gzip"
	"github.com/opencontainers/go-digest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/berth-project/berth/snapshotter/layer"
)

// benchSnapshot compares berth-snapshotter and berth's layer applier with
// containerd's built-in overlayfs snapshotter and its applier, side by
// side: unpack of one big gzip layer and of a 20-layer image, and the
// latency of Prepare+Commit. Both are driven the same way, over gRPC with
// containerd's snapshots API; containerd applies a layer in its diff
// service, berth in the client (as berthd does).
func benchSnapshot(args []string) error {
	fs := flag.NewFlagSet("snapshot", flag.ExitOnError)
	bin := fs.String("snapshotter", "bin/berth-snapshotter", "the berth-snapshotter binary")
	rounds := fs.Int("n", 5, "unpack rounds of each")
	bigMiB := fs.Int("big-mib", 280, "size of the big layer's files, MiB (two thirds incompressible)")
	layers := fs.Int("layers", 20, "layers of the layered image")
	ops := fs.Int("ops", 200, "Prepare+Commit pairs per side")
	fs.Parse(args)

	dir, err := os.MkdirTemp("", "berth-bench-snap-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	fmt.Printf("making test layers in %s ...\n", dir)
	big, err := makeLayer(filepath.Join(dir, "big.tar.gz"), 1, *bigMiB<<20, 2000)
	if err != nil {
		return err
	}
	var image []blob
	for i := range *layers {
		b, err := makeLayer(filepath.Join(dir, fmt.Sprintf("l%02d.tar.gz", i)), uint64(100+i), 4<<20, 300)
		if err != nil {
			return err
		}
		image = append(image, b)
	}
	fmt.Printf("big layer: %.0f MiB gzip (%.0f MiB of files); image: %d layers of %.1f MiB gzip\n",
		float64(big.size)/(1<<20), float64(big.rawSize)/(1<<20), len(image), float64(image[0].size)/(1<<20))

	ctrd, err := startContainerd("bin")
	if err != nil {
		return err
	}
	defer ctrd.stop()
	berth, err := startSnapshotter(*bin, dir)
	if err != nil {
		return err
	}
	defer berth.stop()

	ctx := metadata.AppendToOutgoingContext(context.Background(), "containerd-namespace", "bench")
	cconn, err := grpc.NewClient("unix://"+ctrd.sock(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer cconn.Close()
	bconn, err := grpc.NewClient("unix://"+berth.sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer bconn.Close()
	// A lease keeps containerd's garbage collector off the snapshots the
	// bench makes between rounds.
	lease, err := leasesapi.NewLeasesClient(cconn).Create(ctx, &leasesapi.CreateRequest{ID: "berth-bench"})
	if err != nil {
		return fmt.Errorf("containerd lease: %w", err)
	}
	ctx = metadata.AppendToOutgoingContext(ctx, "containerd-lease", lease.Lease.ID)
	for _, b := range append([]blob{big}, image...) {
		if err := ctrd.ingest(b); err != nil {
			return err
		}
	}
	sides := []*unpacker{
		{name: "containerd", snaps: snapshotsapi.NewSnapshotsClient(cconn), snapshotter: "overlayfs", diff: diffapi.NewDiffClient(cconn)},
		{name: "berth", snaps: snapshotsapi.NewSnapshotsClient(bconn), snapshotter: "berth"},
	}

	results := map[string]map[string][]time.Duration{}
	record := func(what, side string, d time.Duration) {
		if results[what] == nil {
			results[what] = map[string][]time.Duration{}
		}
		results[what][side] = append(results[what][side], d)
	}
	for r := range *rounds {
		for _, s := range sides {
			for _, tc := range []struct {
				what  string
				blobs []blob
			}{{"unpack 1 big layer", []blob{big}}, {fmt.Sprintf("unpack %d layers", len(image)), image}} {
				d, err := s.unpack(ctx, fmt.Sprintf("r%d", r), tc.blobs)
				if err != nil {
					return fmt.Errorf("%s: %s: %w", s.name, tc.what, err)
				}
				record(tc.what, s.name, d)
			}
		}
	}
	// Latency in blocks, alternating, so both see the same machine.
	results["prepare+commit"] = map[string][]time.Duration{}
	for range 5 {
		for _, s := range sides {
			per, err := s.prepareCommit(ctx, *ops/5)
			if err != nil {
				return fmt.Errorf("%s: prepare+commit: %w", s.name, err)
			}
			results["prepare+commit"][s.name] = append(results["prepare+commit"][s.name], per...)
		}
	}

	fmt.Printf("\n%-22s %14s %14s %8s\n", "median of each", "berth", "containerd", "ratio")
	for _, what := range []string{"unpack 1 big layer", fmt.Sprintf("unpack %d layers", len(image)), "prepare+commit"} {
		b, c := medianDur(results[what]["berth"]), medianDur(results[what]["containerd"])
		fmt.Printf("%-22s %14s %14s %7.2fx\n", what, b.Round(10*time.Microsecond), c.Round(10*time.Microsecond), float64(b)/float64(c))
	}
	return nil
}

// blob is a compressed layer on disk.
type blob struct {
	path          string
	digest        digest.Digest
	diffID        digest.Digest
	size, rawSize int64
}

// makeLayer writes a gzip layer of about size bytes of file content in
// files files: a mix of incompressible and text-like data, in nested
// directories, so that both decompression and file creation count.
func makeLayer(path string, seed uint64, size, files int) (blob, error) {
	f, err := os.Create(path)
	if err != nil {
		return blob{}, err
	}
	defer f.Close()
	compressed := sha256.New()
	raw := sha256.New()
	cw := &countWriter{w: io.MultiWriter(f, compressed)}
	zw, err := gzip.NewWriterLevel(cw, gzip.DefaultCompression)
	if err != nil {
		return blob{}, err
	}
	rw := &countWriter{w: io.MultiWriter(zw, raw)}
	tw := tar.NewWriter(rw)
	rng := rand.New(rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8)}))
	mtime := time.Unix(1700000000, 0)
	for d := range 20 {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: fmt.Sprintf("d%02d/", d), Mode: 0o755, ModTime: mtime}); err != nil {
			return blob{}, err
		}
	}
	buf := make([]byte, size/files)
	for i := range files {
		fill(rng, buf, i%3 == 0)
		hdr := &tar.Header{Typeflag: tar.TypeReg, Name: fmt.Sprintf("d%02d/f%05d", i%20, i), Mode: 0o644, Size: int64(len(buf)), ModTime: mtime}
		if err := tw.WriteHeader(hdr); err != nil {
			return blob{}, err
		}
		if _, err := tw.Write(buf); err != nil {
			return blob{}, err
		}
	}
	if err := tw.Close(); err != nil {
		return blob{}, err
	}
	if err := zw.Close(); err != nil {
		return blob{}, err
	}
	return blob{
		path:    path,
		digest:  digest.NewDigestFromBytes(digest.SHA256, compressed.Sum(nil)),
		diffID:  digest.NewDigestFromBytes(digest.SHA256, raw.Sum(nil)),
		size:    cw.n,
		rawSize: rw.n,
	}, nil
}

// fill writes random bytes, or random words (which compress) when text.
func fill(rng *rand.Rand, b []byte, text bool) {
	if !text {
		for i := 0; i+8 <= len(b); i += 8 {
			v := rng.Uint64()
			for j := range 8 {
				b[i+j] = byte(v >> (8 * j))
			}
		}
		return
	}
	words := []string{"container ", "layer ", "berth ", "snapshot ", "overlay ", "image ", "\n", "digest "}
	for i := 0; i < len(b); {
		i += copy(b[i:], words[rng.IntN(len(words))])
	}
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// unpacker drives one snapshotter over the snapshots API.
type unpacker struct {
	name        string
	snaps       snapshotsapi.SnapshotsClient
	snapshotter string
	diff        diffapi.DiffClient // nil: berth's applier, in process
}

// unpack applies blobs as a chain and returns the time it took; the
// snapshots are removed afterwards, untimed.
func (u *unpacker) unpack(ctx context.Context, round string, blobs []blob) (time.Duration, error) {
	var committed []string
	defer func() {
		for i := len(committed) - 1; i >= 0; i-- {
			u.snaps.Remove(ctx, &snapshotsapi.RemoveSnapshotRequest{Snapshotter: u.snapshotter, Key: committed[i]})
		}
	}()
	start := time.Now()
	parent := ""
	chain := digest.Digest("")
	for i, b := range blobs {
		if chain == "" {
			chain = b.diffID
		} else {
			chain = digest.FromString(chain.String() + " " + b.diffID.String())
		}
		name := fmt.Sprintf("%s-%s-%s", u.name, round, chain.Encoded()[:16])
		key := name + "-extract"
		resp, err := u.snaps.Prepare(ctx, &snapshotsapi.PrepareSnapshotRequest{Snapshotter: u.snapshotter, Key: key, Parent: parent})
		if err != nil {
			return 0, fmt.Errorf("prepare layer %d: %w", i, err)
		}
		if err := u.apply(ctx, b, resp.Mounts); err != nil {
			u.snaps.Remove(ctx, &snapshotsapi.RemoveSnapshotRequest{Snapshotter: u.snapshotter, Key: key})
			return 0, fmt.Errorf("apply layer %d: %w", i, err)
		}
		if _, err := u.snaps.Commit(ctx, &snapshotsapi.CommitSnapshotRequest{Snapshotter: u.snapshotter, Name: name, Key: key}); err != nil {
			return 0, fmt.Errorf("commit layer %d: %w", i, err)
		}
		committed = append(committed, name)
		parent = name
	}
	return time.Since(start), nil
}

func (u *unpacker) apply(ctx context.Context, b blob, mounts []*apitypes.Mount) error {
	if u.diff != nil {
		_, err := u.diff.Apply(ctx, &diffapi.ApplyRequest{
			Diff:   &apitypes.Descriptor{MediaType: "application/vnd.oci.image.layer.v1.tar+gzip", Digest: b.digest.String(), Size: b.size},
			Mounts: mounts,
		})
		return err
	}
	root, parents, err := applyTarget(mounts)
	if err != nil {
		return err
	}
	f, err := os.Open(b.path)
	if err != nil {
		return err
	}
	defer f.Close()
	format := layer.Overlay
	if len(parents) == 0 && mounts[0].Type == "bind" {
		format = layer.Plain
	}
	_, err = layer.Apply(ctx, root, f, layer.ApplyOptions{Format: format, Parents: parents, Digest: b.digest, DiffID: b.diffID})
	return err
}

// applyTarget finds where a layer goes in a snapshot's mounts: the upper
// directory of an overlay (its lowers are the parents) or a bind's source.
func applyTarget(mounts []*apitypes.Mount) (string, []string, error) {
	if len(mounts) != 1 {
		return "", nil, fmt.Errorf("%d mounts, want 1", len(mounts))
	}
	m := mounts[0]
	if m.Type == "bind" {
		return m.Source, nil, nil
	}
	var upper string
	var lowers []string
	for _, o := range m.Options {
		if v, ok := strings.CutPrefix(o, "upperdir="); ok {
			upper = v
		}
		if v, ok := strings.CutPrefix(o, "lowerdir="); ok {
			lowers = strings.Split(v, ":")
		}
	}
	if upper == "" {
		return "", nil, errors.New("overlay mount without an upperdir")
	}
	return upper, lowers, nil
}

// prepareCommit times Prepare+Commit pairs of empty snapshots on one base.
func (u *unpacker) prepareCommit(ctx context.Context, n int) ([]time.Duration, error) {
	base := u.name + "-pc-base"
	if _, err := u.snaps.Prepare(ctx, &snapshotsapi.PrepareSnapshotRequest{Snapshotter: u.snapshotter, Key: base + "-a"}); err != nil {
		return nil, err
	}
	if _, err := u.snaps.Commit(ctx, &snapshotsapi.CommitSnapshotRequest{Snapshotter: u.snapshotter, Name: base, Key: base + "-a"}); err != nil {
		return nil, err
	}
	var names []string
	defer func() {
		for _, name := range append(names, base) {
			u.snaps.Remove(ctx, &snapshotsapi.RemoveSnapshotRequest{Snapshotter: u.snapshotter, Key: name})
		}
	}()
	out := make([]time.Duration, 0, n)
	for i := range n {
		name := fmt.Sprintf("%s-pc-%d-%d", u.name, time.Now().UnixNano(), i)
		start := time.Now()
		if _, err := u.snaps.Prepare(ctx, &snapshotsapi.PrepareSnapshotRequest{Snapshotter: u.snapshotter, Key: name + "-a", Parent: base}); err != nil {
			return nil, err
		}
		if _, err := u.snaps.Commit(ctx, &snapshotsapi.CommitSnapshotRequest{Snapshotter: u.snapshotter, Name: name, Key: name + "-a"}); err != nil {
			return nil, err
		}
		out = append(out, time.Since(start))
		names = append(names, name)
	}
	return out, nil
}

// snapshotterProc is a berth-snapshotter the bench started.
type snapshotterProc struct {
	cmd  *exec.Cmd
	root string
	sock string
}

func startSnapshotter(bin, dir string) (*snapshotterProc, error) {
	p := &snapshotterProc{root: filepath.Join(dir, "berth-root"), sock: filepath.Join(dir, "berth.sock")}
	p.cmd = exec.Command(bin, "--root", p.root, "--address", p.sock)
	log, err := os.Create(filepath.Join(dir, "berth-snapshotter.log"))
	if err != nil {
		return nil, err
	}
	p.cmd.Stdout, p.cmd.Stderr = log, log
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(p.sock); err == nil {
			return p, nil
		}
		if time.Now().After(deadline) {
			p.stop()
			b, _ := os.ReadFile(log.Name())
			return nil, fmt.Errorf("berth-snapshotter did not come up:\n%s", b)
		}
	}
}

func (p *snapshotterProc) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	_ = p.cmd.Wait()
}

// ingest puts a blob into containerd's content store.
func (d *containerd) ingest(b blob) error {
	f, err := os.Open(b.path)
	if err != nil {
		return err
	}
	defer f.Close()
	cmd := exec.Command("ctr", "--address", d.sock(), "--namespace", "bench", "content", "ingest",
		"--expected-digest", b.digest.String(), "--expected-size", fmt.Sprint(b.size), "bench-"+b.digest.Encoded())
	cmd.Stdin = f
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("ctr content ingest: %w: %s", err, out)
	}
	// Unreferenced content is garbage to containerd's collector.
	_, err = d.ctr("content", "label", b.digest.String(), "containerd.io/gc.root=bench")
	return err
}
