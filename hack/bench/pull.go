package main

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-project/berth/integration/registry"
	"github.com/berth-project/berth/manager/images"
	"github.com/berth-project/berth/snapshotter/overlay"
)

// benchPull measures pull+unpack of a big image from a local
// docker-registry: berth's image library (in process, as berthd runs it)
// against containerd (ctr images pull into a private daemon) and podman
// where installed, alternating them round by round, from an empty store
// each time.
func benchPull(args []string) error {
	fs := flag.NewFlagSet("pull", flag.ExitOnError)
	rounds := fs.Int("n", 5, "pulls of each")
	mib := fs.Int("mib", 200, "size of the image's files, MiB")
	layers := fs.Int("layers", 8, "layers of the image")
	peers := fs.String("peers", "containerd,podman", "peers to measure, those installed")
	keep := fs.Bool("keep", false, "keep the work directory")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile of berth's pulls to this file")
	parallel := fs.Bool("parallel", false, "also measure berth with ParallelUnpack (all layers at once, rebased)")
	fs.Parse(args)

	dir, err := os.MkdirTemp("/var/tmp", "berth-bench-pull-")
	if err != nil {
		return err
	}
	if !*keep {
		defer os.RemoveAll(dir)
	}
	ctx := context.Background()

	fmt.Printf("building a %d MiB image of %d layers in %s ...\n", *mib, *layers, dir)
	layout := filepath.Join(dir, "layout")
	compressed, err := pullBuildImage(layout, *mib<<20, *layers)
	if err != nil {
		return err
	}
	reg, err := registry.Start(ctx, filepath.Join(dir, "registry"))
	if err != nil {
		return err
	}
	defer reg.Stop()
	ref := reg.Addr + "/bench/big:v1"
	if err := reg.PushLayout(ctx, layout, ref); err != nil {
		return fmt.Errorf("push the image: %w", err)
	}
	fmt.Printf("image %s: %.0f MiB of layers (gzip), from docker-registry on %s\n", ref, float64(compressed)/(1<<20), reg.Addr)

	type puller struct {
		name  string
		pull  func(round int) (time.Duration, error)
		stop  func()
		times []time.Duration
	}
	var pullers []*puller
	var prof *os.File
	if *cpuprofile != "" {
		if prof, err = os.Create(*cpuprofile); err != nil {
			return err
		}
		defer prof.Close()
	}
	pullers = append(pullers, &puller{name: "berth", pull: func(round int) (time.Duration, error) {
		if prof != nil && round >= 0 {
			pprof.StartCPUProfile(prof)
			defer pprof.StopCPUProfile()
			prof = nil // one round is enough
		}
		return pullBerth(ctx, filepath.Join(dir, fmt.Sprintf("berth-%d", round)), ref, false)
	}})
	if *parallel {
		pullers = append(pullers, &puller{name: "berth-par", pull: func(round int) (time.Duration, error) {
			return pullBerth(ctx, filepath.Join(dir, fmt.Sprintf("berth-par-%d", round)), ref, true)
		}})
	}
	for _, p := range strings.Split(*peers, ",") {
		switch p {
		case "containerd":
			if _, err := exec.LookPath("ctr"); err != nil {
				fmt.Println("containerd: ctr not installed, skipped")
				continue
			}
			c, err := startBareContainerd("bin")
			if err != nil {
				return err
			}
			pullers = append(pullers, &puller{name: "containerd", pull: func(int) (time.Duration, error) { return c.pull(ref) }, stop: c.stop})
		case "podman":
			if _, err := exec.LookPath("podman"); err != nil {
				fmt.Println("podman: not installed, skipped")
				continue
			}
			pullers = append(pullers, &puller{name: "podman", pull: func(round int) (time.Duration, error) {
				return pullPodman(filepath.Join(dir, fmt.Sprintf("podman-%d", round)), ref)
			}})
		case "":
		default:
			return fmt.Errorf("unknown peer %q: use containerd or podman", p)
		}
	}
	defer func() {
		for _, p := range pullers {
			if p.stop != nil {
				p.stop()
			}
		}
	}()

	// One warm-up pull each: the registry's files into the page cache,
	// binaries loaded.
	for _, p := range pullers {
		if _, err := p.pull(-1); err != nil {
			return fmt.Errorf("%s: %w", p.name, err)
		}
	}
	for i := range *rounds {
		// Rotate who goes first, so that no one always follows the same
		// neighbour (dirty pages being written back, caches).
		for j := range pullers {
			p := pullers[(i+j)%len(pullers)]
			syscall.Sync()
			d, err := p.pull(i)
			if err != nil {
				return fmt.Errorf("%s: %w", p.name, err)
			}
			p.times = append(p.times, d)
		}
		fmt.Printf("round %d:", i+1)
		for _, p := range pullers {
			fmt.Printf(" %s %.2fs", p.name, p.times[i].Seconds())
		}
		fmt.Println()
	}

	fmt.Printf("\npull+unpack of %d MiB in %d layers, median of %d:\n", *mib, *layers, *rounds)
	best := ""
	var bestT time.Duration
	for _, p := range pullers {
		m := medianDur(p.times)
		fmt.Printf("  %-12s %6.2f s\n", p.name, m.Seconds())
		if !strings.HasPrefix(p.name, "berth") && (best == "" || m < bestT) {
			best, bestT = p.name, m
		}
	}
	if best != "" {
		b := medianDur(pullers[0].times)
		fmt.Printf("berth / %s (fastest peer): %.2fx (target <= 0.70x)\n", best, b.Seconds()/bestT.Seconds())
	}
	return nil
}

// pullBerth pulls ref with the image library into a fresh overlay store
// under dir, and removes it after.
func pullBerth(ctx context.Context, dir, ref string, parallel bool) (time.Duration, error) {
	defer os.RemoveAll(dir)
	sn, err := overlay.New(ctx, filepath.Join(dir, "snapshots"))
	if err != nil {
		return 0, err
	}
	defer sn.Close()
	svc, err := images.Open(ctx, images.Config{Root: filepath.Join(dir, "images"), Snapshotter: sn, ParallelUnpack: parallel})
	if err != nil {
		return 0, err
	}
	defer svc.Close()
	start := time.Now()
	if _, err := svc.Pull(ctx, ref, images.PullOptions{}); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

// pullPodman pulls ref with podman into a fresh store under dir.
func pullPodman(dir, ref string) (time.Duration, error) {
	root, runroot := filepath.Join(dir, "root"), filepath.Join(dir, "run")
	base := []string{"--root", root, "--runroot", runroot, "--storage-driver", "overlay", "--log-level", "error"}
	defer func() {
		exec.Command("podman", append(base, "system", "reset", "--force")...).Run()
		os.RemoveAll(dir)
	}()
	start := time.Now()
	out, err := exec.Command("podman", append(base, "pull", "--quiet", "--tls-verify=false", ref)...).CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("podman pull: %v: %s", err, out)
	}
	return time.Since(start), nil
}

// pull pulls and unpacks ref, then removes the image and lets containerd
// collect its content and snapshots, so that each pull starts empty.
func (c *containerd) pull(ref string) (time.Duration, error) {
	start := time.Now()
	if _, err := c.ctr("images", "pull", "--plain-http", ref); err != nil {
		return 0, err
	}
	d := time.Since(start)
	if _, err := c.ctr("images", "rm", "--sync", ref); err != nil {
		return 0, err
	}
	if out, _ := c.ctr("content", "ls", "-q"); strings.TrimSpace(string(out)) != "" {
		return 0, fmt.Errorf("containerd kept content after rm --sync: %s", out)
	}
	return d, nil
}

// pullBuildImage writes an OCI layout of an image of size bytes of files
// in n layers: files of 4 KiB to 4 MiB, most of their bytes random (so
// that gzip gains little, as with binaries and compressed assets), some
// text. It returns the layers' compressed size.
func pullBuildImage(dir string, size, n int) (int64, error) {
	if err := os.MkdirAll(filepath.Join(dir, "blobs", "sha256"), 0o755); err != nil {
		return 0, err
	}
	putBlob := func(b []byte) (ocispec.Descriptor, error) {
		d := digest.FromBytes(b)
		return ocispec.Descriptor{Digest: d, Size: int64(len(b))}, os.WriteFile(filepath.Join(dir, "blobs", "sha256", d.Encoded()), b, 0o644)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	var total int64
	cfg := ocispec.Image{Platform: hostPlatform(), RootFS: ocispec.RootFS{Type: "layers"}}
	m := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest}
	m.SchemaVersion = 2
	per := size / n
	for i := range n {
		desc, diffID, err := pullWriteLayer(dir, rng, i, per)
		if err != nil {
			return 0, err
		}
		total += desc.Size
		m.Layers = append(m.Layers, desc)
		cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, diffID)
		cfg.History = append(cfg.History, ocispec.History{CreatedBy: fmt.Sprintf("bench layer %d", i)})
	}
	cb, _ := json.Marshal(cfg)
	cd, err := putBlob(cb)
	if err != nil {
		return 0, err
	}
	cd.MediaType = ocispec.MediaTypeImageConfig
	m.Config = cd
	mb, _ := json.Marshal(m)
	md, err := putBlob(mb)
	if err != nil {
		return 0, err
	}
	md.MediaType = ocispec.MediaTypeImageManifest
	idx := ocispec.Index{MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{md}}
	idx.SchemaVersion = 2
	ib, _ := json.Marshal(idx)
	if err := os.WriteFile(filepath.Join(dir, "index.json"), ib, 0o644); err != nil {
		return 0, err
	}
	lb, _ := json.Marshal(ocispec.ImageLayout{Version: ocispec.ImageLayoutVersion})
	return total, os.WriteFile(filepath.Join(dir, "oci-layout"), lb, 0o644)
}

func hostPlatform() ocispec.Platform {
	p, _ := images.ParsePlatform("")
	return p
}

// pullWriteLayer writes one gzip layer of about size bytes of files.
func pullWriteLayer(dir string, rng *rand.Rand, i, size int) (ocispec.Descriptor, digest.Digest, error) {
	tmp := filepath.Join(dir, fmt.Sprintf("layer-%d.tmp", i))
	f, err := os.Create(tmp)
	if err != nil {
		return ocispec.Descriptor{}, "", err
	}
	defer os.Remove(tmp)
	blob := digest.Canonical.Digester()
	diff := digest.Canonical.Digester()
	cw := &pullCountWriter{w: io.MultiWriter(f, blob.Hash())}
	zw, _ := gzip.NewWriterLevel(cw, gzip.DefaultCompression)
	tw := tar.NewWriter(io.MultiWriter(zw, diff.Hash()))
	top := fmt.Sprintf("data%d", i)
	tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: top + "/", Mode: 0o755})
	buf := make([]byte, 4<<20)
	for j, written := 0, 0; written < size; j++ {
		n := 4<<10 + rng.IntN(4<<20-4<<10)
		if written+n > size {
			n = size - written
		}
		sub := fmt.Sprintf("%s/d%02d", top, j%16)
		if j < 16 {
			tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: sub + "/", Mode: 0o755})
		}
		b := buf[:n]
		if j%5 == 0 {
			for k := range b {
				b[k] = "abcdefghij klmnopqrstuvwxyz\n"[rng.IntN(28)]
			}
		} else {
			for k := 0; k+8 <= len(b); k += 8 {
				v := rng.Uint64()
				for x := 0; x < 8; x++ {
					b[k+x] = byte(v >> (8 * x))
				}
			}
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: fmt.Sprintf("%s/f%04d", sub, j), Mode: 0o644, Size: int64(n)}); err != nil {
			return ocispec.Descriptor{}, "", err
		}
		if _, err := tw.Write(b); err != nil {
			return ocispec.Descriptor{}, "", err
		}
		written += n
	}
	if err := errors.Join(tw.Close(), zw.Close(), f.Close()); err != nil {
		return ocispec.Descriptor{}, "", err
	}
	d := blob.Digest()
	if err := os.Rename(tmp, filepath.Join(dir, "blobs", "sha256", d.Encoded())); err != nil {
		return ocispec.Descriptor{}, "", err
	}
	return ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: d, Size: cw.n}, diff.Digest(), nil
}

type pullCountWriter struct {
	w io.Writer
	n int64
}

func (c *pullCountWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
