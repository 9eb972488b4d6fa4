package layer

import (
	"bufio"
	"bytes"
	"context"
	_ "crypto/sha256" // the digest algorithms go-digest offers
	_ "crypto/sha512"
	"errors"
	"fmt"
	"hash"
	"io"
	"sync"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/opencontainers/go-digest"
)

// compression is how a layer stream is compressed.
type compression int

// The compressions Apply reads. They are told apart by the stream's first
// bytes, not by a media type, so a mislabelled layer still applies.
const (
	uncompressed compression = iota
	gzipped
	zstded
)

func (c compression) String() string {
	switch c {
	case uncompressed:
		return "uncompressed"
	case gzipped:
		return "gzip"
	case zstded:
		return "zstd"
	}
	return fmt.Sprintf("compression(%d)", int(c))
}

var (
	magicGzip  = []byte{0x1f, 0x8b}
	magicZstd  = []byte{0x28, 0xb5, 0x2f, 0xfd}
	magicXz    = []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}
	magicBzip2 = []byte{'B', 'Z', 'h'}
)

// detect tells the compression from the stream's first bytes.
func detect(head []byte) (compression, error) {
	switch {
	case bytes.HasPrefix(head, magicGzip):
		return gzipped, nil
	case bytes.HasPrefix(head, magicZstd):
		return zstded, nil
	case bytes.HasPrefix(head, magicXz):
		return 0, errors.New("xz-compressed layers are not supported (use gzip or zstd)")
	case bytes.HasPrefix(head, magicBzip2):
		return 0, errors.New("bzip2-compressed layers are not supported (use gzip or zstd)")
	}
	return uncompressed, nil
}

// The decompressed tar travels from the producer goroutine to the applier in
// chunks. chunkSize×chunks bounds the read-ahead: enough that decompression
// keeps going while the applier waits on a large file's writes.
const (
	chunkSize = 256 << 10
	chunks    = 16
)

// hashCounter hashes and counts what is written to it, hashing in a
// goroutine of its own: hashing a layer twice (the stream as given and the
// tar) costs as much CPU as decompressing it, and would otherwise slow the
// goroutine that decompresses or the one that writes files.
type hashCounter struct {
	alg  digest.Algorithm
	h    hash.Hash
	n    int64
	cur  []byte      // filling, to be handed over
	work chan []byte // to hash, in order; nil once finished
	free chan []byte // hashed
	made int
	done chan struct{}
	sum  digest.Digest
}

const hashBuffers = 4

// algorithmOf is the algorithm to compute for an expected digest: its own,
// or the canonical one when none is expected.
func algorithmOf(expected digest.Digest) (digest.Algorithm, error) {
	if expected == "" {
		return digest.Canonical, nil
	}
	if err := expected.Validate(); err != nil {
		return "", fmt.Errorf("expected digest %q: %w", expected, err)
	}
	return expected.Algorithm(), nil
}

// newHashCounter starts a hashCounter; finish stops it.
func newHashCounter(alg digest.Algorithm) *hashCounter {
	c := &hashCounter{
		alg:  alg,
		h:    alg.Hash(),
		work: make(chan []byte, hashBuffers),
		free: make(chan []byte, hashBuffers),
		done: make(chan struct{}),
	}
	go func() {
		defer close(c.done)
		for b := range c.work {
			c.h.Write(b) // a hash.Hash never fails
			c.free <- b[:0]
		}
	}()
	return c
}

// Write hands p to the hashing goroutine (a copy of it: p is not kept).
func (c *hashCounter) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	n := len(p)
	for len(p) > 0 {
		if c.cur == nil {
			select {
			case c.cur = <-c.free:
			default:
				if c.made < hashBuffers {
					c.cur = chunkPool.Get().([]byte)[:0]
					c.made++
				} else {
					c.cur = <-c.free
				}
			}
		}
		k := copy(c.cur[len(c.cur):cap(c.cur)], p)
		c.cur, p = c.cur[:len(c.cur)+k], p[k:]
		if len(c.cur) == cap(c.cur) {
			c.work <- c.cur
			c.cur = nil
		}
	}
	return n, nil
}

// finish waits for the hashing to end and returns the digest. Nothing may
// be written after.
func (c *hashCounter) finish() digest.Digest {
	if c.work == nil {
		return c.sum
	}
	if len(c.cur) > 0 {
		c.work <- c.cur
	}
	c.cur = nil
	close(c.work)
	<-c.done
	c.work = nil
	for c.made > 0 {
		chunkPool.Put((<-c.free)[:chunkSize])
		c.made--
	}
	c.sum = digest.NewDigest(c.alg, c.h)
	return c.sum
}

// stream reads a layer in a goroutine of its own: it decompresses it,
// feeds the stream as given and the tar to their hashCounters, and hands
// the tar to Read in chunks. Decompression and hashing thus run beside the
// applier's file writes instead of in turn with them, in one pass over the
// data.
type stream struct {
	filled chan []byte   // chunks of tar, in order; closed at the end
	free   chan []byte   // chunks the reader is done with
	done   chan struct{} // closed by close to stop the producer early
	wg     sync.WaitGroup

	cur  []byte // the unread part of the chunk being read
	buf  []byte // the whole of that chunk, to give back
	err  error  // why the producer stopped; read after filled is closed
	eof  bool
	comp compression
	// tarIsGiven: the stream is an uncompressed tar hashed with the
	// same algorithm both ways, so it is hashed once, as given.
	tarIsGiven bool

	given, tar *hashCounter
}

// newStream starts reading r. The producer stops at the end of r, on an
// error, when ctx is done, or when close is called.
func newStream(ctx context.Context, r io.Reader, given, tar *hashCounter) *stream {
	s := &stream{
		filled: make(chan []byte, chunks),
		free:   make(chan []byte, chunks),
		done:   make(chan struct{}),
		given:  given,
		tar:    tar,
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer close(s.filled)
		s.err = s.produce(ctx, r)
	}()
	return s
}

func (s *stream) produce(ctx context.Context, r io.Reader) error {
	br := bufio.NewReaderSize(io.TeeReader(r, s.given), 128<<10)
	head, err := br.Peek(len(magicXz))
	if err != nil && err != io.EOF {
		return fmt.Errorf("read layer: %w", err)
	}
	comp, err := detect(head)
	if err != nil {
		return err
	}
	s.comp = comp
	s.tarIsGiven = comp == uncompressed && s.given.alg == s.tar.alg
	var dec io.Reader = br
	switch comp {
	case gzipped:
		zr, err := gzip.NewReader(br)
		if err != nil {
			return fmt.Errorf("decompress gzip layer: %w", err)
		}
		defer zr.Close()
		dec = zr
	case zstded:
		zr, err := zstd.NewReader(br)
		if err != nil {
			return fmt.Errorf("decompress zstd layer: %w", err)
		}
		defer zr.Close()
		dec = zr
	}
	allocated := 0
	for {
		var buf []byte
		select {
		case buf = <-s.free:
		default:
			// Chunks are made as the read-ahead grows: a small layer
			// needs one.
			if allocated < chunks {
				buf = chunkPool.Get().([]byte)
				allocated++
				break
			}
			select {
			case buf = <-s.free:
			case <-s.done:
				return errors.New("layer stream closed")
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		n, err := fill(dec, buf)
		if n > 0 && !s.tarIsGiven {
			s.tar.Write(buf[:n])
		}
		if n > 0 {
			select {
			case s.filled <- buf[:n]:
			case <-s.done:
				return errors.New("layer stream closed")
			case <-ctx.Done():
				return ctx.Err()
			}
		} else {
			s.free <- buf
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			if comp == uncompressed {
				return fmt.Errorf("read layer: %w", err)
			}
			return fmt.Errorf("decompress %s layer: %w", comp, err)
		}
	}
	// Whatever follows the compressed data is part of the stream as given
	// and so of its digest.
	if _, err := io.Copy(io.Discard, br); err != nil {
		return fmt.Errorf("read layer: %w", err)
	}
	return nil
}

// fill reads into buf until it is full, r ends (io.EOF) or fails.
func fill(r io.Reader, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := r.Read(buf[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// Read reads the tar. It is not safe for concurrent use.
func (s *stream) Read(p []byte) (int, error) {
	for len(s.cur) == 0 {
		if s.eof {
			return 0, s.end()
		}
		if s.buf != nil {
			s.free <- s.buf[:cap(s.buf)] // never blocks: free holds every chunk
			s.buf = nil
		}
		b, ok := <-s.filled
		if !ok {
			s.eof = true
			return 0, s.end()
		}
		s.buf, s.cur = b, b
	}
	n := copy(p, s.cur)
	s.cur = s.cur[n:]
	return n, nil
}

func (s *stream) end() error {
	if s.err != nil {
		return s.err
	}
	return io.EOF
}

// digests returns the digests and sizes of the stream as given and of the
// tar, once close has been called.
func (s *stream) digests() (given, tar digest.Digest, givenSize, tarSize int64) {
	given, givenSize = s.given.finish(), s.given.n
	if s.tarIsGiven {
		return given, given, givenSize, givenSize
	}
	return given, s.tar.finish(), givenSize, s.tar.n
}

// close stops the producer and waits for it: after close, r is no longer
// read and the hashes are final.
func (s *stream) close() {
	select {
	case <-s.done:
	default:
		close(s.done)
	}
	s.wg.Wait()
	s.given.finish()
	s.tar.finish()
	// Keep the chunks for the next layer.
	if s.buf != nil {
		chunkPool.Put(s.buf[:cap(s.buf)])
		s.buf, s.cur = nil, nil
	}
	for {
		select {
		case b := <-s.free:
			chunkPool.Put(b[:cap(b)])
		case b, ok := <-s.filled:
			if !ok {
				return
			}
			chunkPool.Put(b[:cap(b)])
		}
	}
}

var chunkPool = sync.Pool{New: func() any { return make([]byte, chunkSize) }}
