// Package memtrim gives back, whenever a daemon goes quiet, the memory it
// holds only because of what it did a moment ago: the heap's free pages, and
// its mappings of the executable's code and read-only data. The shims use it
// (one runs per container, so every MiB counts thousands of times), and so
// do berthd and berth-snapshotter, idle most of the time.
//
// A shim is idle almost all of its life, and what it did last (start-up,
// package initialization, a burst of requests) leaves two things behind.
// The heap keeps its free pages up to the garbage collector's next goal
// (at least 4 MiB), and every page of the binary that start-up touched stays
// mapped: package initialization touches code and data all over the binary,
// and the kernel maps 64 KiB around each page fault, so nearly the whole
// 5.3 MiB of text and rodata stays resident in every shim.
package memtrim

import (
	"bufio"
	"bytes"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Trim unmaps the executable's read-only mappings (code and rodata) and, if
// the garbage collector runs in this shim anyway, returns the heap's free
// pages to the kernel.
//
// The mappings are private mappings of the binary that the shim never
// writes, so the kernel only drops the page table entries: the pages stay in
// the page cache, shared by every shim, and the next access maps them again
// from there with a minor fault. The writable data segment is left alone
// (its written pages are the shim's own copies).
//
// The collection is only forced in a shim that has collected before: Go's
// periodic collection (every two minutes) starts only after a first one, and
// each collection touches its metadata and code, so forcing one in a shim
// whose heap never reached the first goal would add 0.4 MiB for nothing.
func Trim() {
	trim.Lock()
	defer trim.Unlock()
	debug.ReadGCStats(&trim.gc)
	if trim.gc.NumGC > 0 {
		debug.FreeOSMemory()
	}
	trim.once.Do(func() { trim.exe = readOnlyExecutable() })
	for _, r := range trim.exe {
		_, _, _ = syscall.Syscall(syscall.SYS_MADVISE, r.start, r.end-r.start, syscall.MADV_DONTNEED)
	}
}

// trim is Trim's state, kept so that a trim in a shim that never collects
// allocates nothing after the first (its garbage would stay).
var trim struct {
	sync.Mutex
	gc   debug.GCStats // ReadGCStats reuses its buffers
	once sync.Once
	exe  []span // the executable's mappings do not change
}

type span struct{ start, end uintptr }

// readOnlyExecutable lists the mappings of this process's executable that
// are not writable and hold no page of their own: from /proc/self/smaps, the
// ones whose inode is /proc/self/exe's, whose permissions lack "w", and
// whose Anonymous size is 0. The last excludes pages written before the
// mapping was made read-only (a dynamic loader's relocations in a PIE's
// RELRO segment), which MADV_DONTNEED would revert to the file's contents.
// A read-only mapping cannot gain such pages later.
func readOnlyExecutable() []span {
	var st syscall.Stat_t
	if err := syscall.Stat("/proc/self/exe", &st); err != nil {
		return nil
	}
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		return nil
	}
	defer f.Close()
	var spans []span
	var cur span // the current mapping, if it is a candidate
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// Line by line as bytes: smaps has some twenty lines per mapping,
		// and in a shim that never collects its garbage would stay.
		line := sc.Bytes()
		if len(line) == 0 {
			continue
		}
		if c := line[0]; '0' <= c && c <= '9' || 'a' <= c && c <= 'f' {
			// A mapping: start-end perms offset dev inode path.
			cur = span{}
			fields := strings.Fields(string(line))
			if len(fields) < 6 || strings.Contains(fields[1], "w") {
				continue
			}
			if ino, err := strconv.ParseUint(fields[4], 10, 64); err != nil || ino != st.Ino {
				continue
			}
			start, end, _ := strings.Cut(fields[0], "-")
			s, err1 := strconv.ParseUint(start, 16, 64)
			e, err2 := strconv.ParseUint(end, 16, 64)
			if err1 == nil && err2 == nil && e > s {
				cur = span{uintptr(s), uintptr(e)}
			}
			continue
		}
		// A field of the mapping: "Anonymous:        0 kB".
		if v, ok := bytes.CutPrefix(line, []byte("Anonymous:")); ok && cur.end != 0 {
			if f := bytes.Fields(v); len(f) > 0 && string(f[0]) == "0" {
				spans = append(spans, cur)
			}
			cur = span{}
		}
	}
	return spans
}

// Idle runs Trim once no request has started or ended for a while.
type Idle struct {
	mu    sync.Mutex
	timer *time.Timer
	after time.Duration
	trim  func()
}

// NewIdle returns an Idle that trims after quiet periods of d; the first
// trim comes d after the first Touch.
func NewIdle(d time.Duration) *Idle {
	return &Idle{after: d, trim: Trim}
}

// Touch marks activity: the trim waits until d has passed since the last
// Touch. A trim while a request runs costs only page faults, so Touch at a
// request's start and end is enough.
func (i *Idle) Touch() {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.timer == nil {
		i.timer = time.AfterFunc(i.after, i.trim)
		return
	}
	i.timer.Reset(i.after)
}
