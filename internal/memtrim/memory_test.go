package memtrim

import (
	"bufio"
	"os"
	"reflect"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// rss is the resident size in KiB of the mapping of /proc/self/smaps that
// starts at start.
func rss(t *testing.T, start uintptr) int {
	t.Helper()
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if first, _, _ := strings.Cut(line, " "); !strings.HasSuffix(first, ":") {
			// A mapping's first line: start-end perms offset dev inode path.
			s, _, _ := strings.Cut(first, "-")
			a, err := strconv.ParseUint(s, 16, 64)
			in = err == nil && uintptr(a) == start
			continue
		}
		if in && strings.HasPrefix(line, "Rss:") {
			kb, err := strconv.Atoi(strings.Fields(line)[1])
			if err != nil {
				t.Fatal(err)
			}
			return kb
		}
	}
	t.Fatalf("no mapping at %#x", start)
	return 0
}

func TestTrimUnmapsCode(t *testing.T) {
	spans := readOnlyExecutable()
	pc := reflect.ValueOf(Trim).Pointer()
	var text span
	for _, s := range spans {
		if s.start <= pc && pc < s.end {
			text = s
		}
	}
	if text.start == 0 {
		t.Fatalf("no read-only mapping of the executable holds the code (%x) in %x", pc, spans)
	}
	before := rss(t, text.start)
	Trim()
	after := rss(t, text.start)
	t.Logf("code resident: %d KiB before Trim, %d KiB after", before, after)
	if after >= before {
		t.Errorf("code resident: %d KiB before Trim, %d KiB after; want less", before, after)
	}
	// Code and read-only data read back as before.
	if got := strconv.Itoa(12345); got != "12345" {
		t.Fatalf("after Trim, strconv.Itoa(12345) = %q", got)
	}
}

func TestIdleTrimsAfterQuiet(t *testing.T) {
	var n atomic.Int32
	i := NewIdle(50 * time.Millisecond)
	i.trim = func() { n.Add(1) }
	for range 5 {
		i.Touch()
		time.Sleep(10 * time.Millisecond)
	}
	if n.Load() != 0 {
		t.Fatalf("trimmed while touched every 10ms")
	}
	time.Sleep(200 * time.Millisecond)
	if got := n.Load(); got != 1 {
		t.Fatalf("trims after a quiet spell: %d, want 1", got)
	}
}
