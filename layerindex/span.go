package layerindex

import (
	"bufio"
	"io"
	"sync"

	"github.com/opencontainers/go-digest"
	"github.com/pkg/errors"
	"golang.org/x/sys/unix"
)

// chunk is the uncompressed bytes of a gzip layer from one checkpoint
// (or the start) to the next (or the end), decompressed as far as reads
// have needed: the first read of a small file inflates up to it, not
// the whole span, and the decompressor stays to go on.
type chunk struct {
	digest     digest.Digest
	start, end int64

	mu      sync.Mutex // held while filling
	data    []byte     // filled so far; the bytes never change once there
	stream  io.Reader  // nil before the first fill and once full
	closers []io.Closer
	err     error

	refs    int  // readers using data (under Pool.mu)
	evicted bool // out of the pool: recycled when refs falls to 0
}

// spanReadahead is what a fill inflates past what the read needs: the
// next files of the tar are read next by tar -c or grep -r.
const spanReadahead = 256 << 10

// spanRounding is what span buffers are a multiple of.
const spanRounding = 256 << 10

// acquireChunk returns the span of layer d at start (to end), made
// empty if no reader has it; releaseChunk gives it back.
func (p *Pool) acquireChunk(d digest.Digest, start, end int64) *chunk {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, c := range p.chunks {
		if c.digest == d && c.start == start {
			// The most recently used goes last.
			p.chunks = append(append(p.chunks[:i:i], p.chunks[i+1:]...), c)
			c.refs++
			return c
		}
	}
	c := &chunk{digest: d, start: start, end: end, refs: 1}
	for i, b := range p.free {
		if int64(cap(b)) >= end-start {
			c.data = b[:0]
			p.free = append(p.free[:i], p.free[i+1:]...)
			break
		}
	}
	if c.data == nil {
		// Spans differ by up to a deflate block: buffers a little
		// larger than the first serve the next.
		c.data = allocSpan(int((end - start + spanRounding - 1) / spanRounding * spanRounding))
	}
	p.chunks = append(p.chunks, c)
	for len(p.chunks) > p.maxChunks {
		old := p.chunks[0]
		p.chunks[0] = nil
		p.chunks = p.chunks[1:]
		old.evicted = true
		if old.refs == 0 {
			p.recycle(old)
		}
	}
	return c
}

// releaseChunk gives c back; a span that failed (drop) is forgotten,
// so that the next read tries again.
func (p *Pool) releaseChunk(c *chunk, drop bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if drop && !c.evicted {
		for i, o := range p.chunks {
			if o == c {
				p.chunks = append(p.chunks[:i], p.chunks[i+1:]...)
				break
			}
		}
		c.evicted = true
	}
	c.refs--
	if c.evicted && c.refs == 0 {
		p.recycle(c)
	}
}

// empty drops every span (their buffers freed once no reader holds
// them) and the buffers kept for the next.
func (p *Pool) empty() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.chunks {
		c.evicted = true
		if c.refs == 0 {
			p.recycle(c)
		}
	}
	p.chunks = nil
	for _, b := range p.free {
		freeSpan(b)
	}
	p.free = nil
}

// recycle keeps the buffer of chunk c, which no reader uses any more,
// for the next span (under p.mu).
func (p *Pool) recycle(c *chunk) {
	c.mu.Lock()
	c.closeStream()
	buf := c.data
	c.data = nil
	c.mu.Unlock()
	if len(p.free) < 2 {
		p.free = append(p.free, buf[:0])
	} else {
		freeSpan(buf)
	}
}

// allocSpan returns an empty buffer of capacity n outside the Go heap:
// the spans are a fixed few MiB whose lifetime the pool knows (freeSpan
// when no reader holds them), and in the heap the garbage collector
// would let it grow by their size again before collecting.
func allocSpan(n int) []byte {
	b, err := unix.Mmap(-1, 0, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return make([]byte, 0, n)
	}
	return b[:0]
}

// freeSpan gives a buffer of allocSpan back (one from make is left to
// the collector: unix.Munmap knows only its own mappings).
func freeSpan(b []byte) {
	if cap(b) > 0 {
		unix.Munmap(b[:cap(b)])
	}
}

func (c *chunk) closeStream() {
	for _, cl := range c.closers {
		cl.Close()
	}
	c.stream, c.closers = nil, nil
}

// fill inflates c until it holds the bytes before need (an offset of the
// layer), and returns what it holds.
func (r *Reader) fill(c *chunk, need int64) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.start+int64(len(c.data)) >= need {
		return c.data, nil
	}
	if c.err != nil {
		return nil, c.err
	}
	if c.stream == nil {
		if err := r.startChunk(c); err != nil {
			c.err = err
			return nil, err
		}
	}
	want := min(c.end-c.start, need-c.start+spanReadahead)
	have := int64(len(c.data))
	c.data = c.data[:want]
	n, err := io.ReadFull(c.stream, c.data[have:])
	c.data = c.data[:have+int64(n)]
	r.inflated += int64(n)
	if err != nil {
		c.err = errors.Wrapf(noEOF(err), "layer %s: span at %d", r.idx.Digest, c.start)
		c.closeStream()
		return nil, c.err
	}
	if int64(len(c.data)) == c.end-c.start {
		c.closeStream()
	}
	return c.data, nil
}

// startChunk starts inflating at c's checkpoint (or the layer's start),
// through a blob handle of c's own: c outlives the Reader.
func (r *Reader) startChunk(c *chunk) error {
	blob, closer := r.blob, io.Closer(io.NopCloser(nil))
	if r.reopen != nil {
		b, cl, err := r.reopen()
		if err != nil {
			return err
		}
		blob, closer = b, cl
	}
	c.closers = []io.Closer{closer}
	if cp := r.idx.checkpointBefore(c.start); cp != nil && cp.Out == c.start {
		s, err := r.resume(blob, cp)
		if err != nil {
			c.closeStream()
			return errors.WithMessagef(err, "layer %s", r.idx.Digest)
		}
		c.stream = s
		return nil
	}
	s, err := newGzipStream(bufio.NewReaderSize(io.NewSectionReader(blob, 0, r.idx.Size), 64<<10), 0)
	if err != nil {
		c.closeStream()
		return errors.Wrapf(err, "layer %s: gzip", r.idx.Digest)
	}
	c.stream = s
	return nil
}

// readChunks reads a gzip layer span by span: each span decompressed
// once, as far as reads need, from its checkpoint, and kept in the pool.
func (r *Reader) readChunks(p []byte, off int64) (int, error) {
	n := 0
	for n < len(p) {
		if off >= r.idx.TarSize {
			return n, io.EOF
		}
		start, end := int64(0), r.idx.TarSize
		if cp := r.idx.checkpointBefore(off); cp != nil {
			start = cp.Out
		}
		if i := r.idx.checkpointAfter(start); i >= 0 {
			end = r.idx.Checkpoints[i].Out
		}
		c := r.pool.acquireChunk(r.idx.Digest, start, end)
		data, err := r.fill(c, min(end, off+int64(len(p)-n)))
		m := 0
		if err == nil {
			m = copy(p[n:], data[off-start:])
		}
		r.pool.releaseChunk(c, err != nil)
		if err != nil {
			return n, err
		}
		n += m
		off += int64(m)
	}
	return n, nil
}
