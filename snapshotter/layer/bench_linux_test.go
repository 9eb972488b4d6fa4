package layer_test

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/klauspost/compress/gzip"

	"github.com/berth-project/berth/integration/testenv"
	"github.com/berth-project/berth/snapshotter/layer"
)

var benchLayer struct {
	once sync.Once
	gz   []byte
	size int64 // uncompressed
}

// benchmarkLayer is a gzip layer of about 50 MiB holding many files the way
// image layers do (some 4,500 files in 115 directories): mostly small ones,
// a few large, half of them compressible text and half incompressible
// (binaries, compressed assets), with symlinks and hardlinks. It is the
// same on every run.
// BERTH_LAYER_BENCH_FILE names another layer to use instead (to compare
// with containerd on the same bytes, for instance).
func benchmarkLayer(b *testing.B) ([]byte, int64) {
	benchLayer.once.Do(func() {
		if p := os.Getenv("BERTH_LAYER_BENCH_FILE"); p != "" {
			gz, err := os.ReadFile(p)
			if err != nil {
				b.Fatal(err)
			}
			zr, err := gzip.NewReader(bytes.NewReader(gz))
			if err != nil {
				b.Fatal(err)
			}
			benchLayer.gz, benchLayer.size = gz, int64(len(readAll(b, zr)))
			return
		}
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		tw := tar.NewWriter(zw)
		rng := rand.New(rand.NewChaCha8([32]byte{'b', 'e', 'r', 't', 'h'}))
		words := strings.Fields("the quick brown fox jumps over a lazy dog while berth unpacks layers into snapshots " +
			"func main import package return error nil struct interface string int64 byte slice map chan")
		var size int64
		write := func(hdr *tar.Header, body []byte) {
			hdr.ModTime, hdr.Format = epoch, tar.FormatPAX
			if err := tw.WriteHeader(hdr); err != nil {
				b.Fatal(err)
			}
			if _, err := tw.Write(body); err != nil {
				b.Fatal(err)
			}
			size += int64(len(body)) + 512
		}
		var files []string
		for d := 0; size < 80<<20; d++ {
			dir := fmt.Sprintf("usr/lib/pkg%03d", d)
			write(&tar.Header{Typeflag: tar.TypeDir, Name: dir + "/", Mode: 0o755}, nil)
			for f := 0; f < 40; f++ {
				var n int
				switch r := rng.IntN(100); {
				case r < 80:
					n = 100 + rng.IntN(8<<10)
				case r < 99:
					n = 8<<10 + rng.IntN(56<<10)
				default:
					n = 256<<10 + rng.IntN(1280<<10)
				}
				body := make([]byte, 0, n)
				if rng.IntN(2) == 0 {
					body = body[:n]
					for i := range body {
						body[i] = byte(rng.Uint32())
					}
				} else {
					for len(body) < n {
						body = append(body, words[rng.IntN(len(words))]...)
						body = append(body, ' ')
					}
					body = body[:n]
				}
				name := fmt.Sprintf("%s/file%02d", dir, f)
				write(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(n)}, body)
				files = append(files, name)
			}
			write(&tar.Header{Typeflag: tar.TypeSymlink, Name: dir + "/link", Linkname: "file00", Mode: 0o777}, nil)
			write(&tar.Header{Typeflag: tar.TypeLink, Name: dir + "/hardlink", Linkname: files[len(files)-1]}, nil)
		}
		if err := tw.Close(); err != nil {
			b.Fatal(err)
		}
		if err := zw.Close(); err != nil {
			b.Fatal(err)
		}
		benchLayer.gz, benchLayer.size = buf.Bytes(), size
		if p := os.Getenv("BERTH_LAYER_BENCH_WRITE"); p != "" {
			if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
				b.Fatal(err)
			}
		}
	})
	return benchLayer.gz, benchLayer.size
}

// BenchmarkApply unpacks a ~50 MiB gzip layer of many files into a fresh
// Overlay root (an empty upper directory, as the overlay snapshotter does),
// from memory; SetBytes counts the uncompressed tar. The trees stay until
// the end: removing one between iterations would make the next one's file
// creations slower (ext4 skips recently freed inodes, at a cost).
func BenchmarkApply(b *testing.B) {
	testenv.RequireRoot(b)
	gz, size := benchmarkLayer(b)
	b.Logf("layer: %.1f MiB gzip, %.1f MiB tar", float64(len(gz))/(1<<20), float64(size)/(1<<20))
	base := b.TempDir()
	b.SetBytes(size)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		root := filepath.Join(base, strconv.Itoa(i))
		i++
		if err := os.Mkdir(root, 0o755); err != nil {
			b.Fatal(err)
		}
		if _, err := layer.Apply(context.Background(), root, bytes.NewReader(gz), layer.ApplyOptions{Format: layer.Overlay}); err != nil {
			b.Fatal(err)
		}
	}
}
