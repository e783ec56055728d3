package layerindex

import (
	"archive/tar"
	"bufio"
	"io"
	"sort"
	"sync"

	"github.com/opencontainers/go-digest"
	"github.com/pkg/errors"
)

// Reader reads a layer's uncompressed tar stream at any offset, from the
// blob the index was built of. A plain tar is read where it lies; a
// compressed one is decompressed forward from the nearest place it can
// start (the stream's start, or a gzip checkpoint), and a read that goes
// on where the last one stopped goes on decompressing. With a Pool, the
// decompressors outlive the Reader: the next file's Reader goes on where
// this one stopped (tar -c, grep -r and cp -r read a layer's files in
// its order). One Reader serves one reader at a time (its methods lock):
// give each open file its own.
type Reader struct {
	idx  *Index
	blob io.ReaderAt
	// With a pool, reopen gives a cursor its own handle of the blob
	// (the pool keeps it after this Reader's blob is closed).
	pool    *Pool
	ownPool bool // NewReader's, emptied at Close
	reopen  func() (io.ReaderAt, io.Closer, error)

	mu  sync.Mutex
	cur *cursor
	// inflated counts the bytes decompressed, discarded ones included.
	inflated int64
}

// cursor is a decompressor of one layer, positioned at pos.
type cursor struct {
	digest  digest.Digest
	stream  io.Reader
	closers []io.Closer
	pos     int64
}

func (c *cursor) close() {
	for _, cl := range c.closers {
		cl.Close()
	}
}

// Pool keeps the decompressors that Readers of every layer left, up to
// a number, so that a read where another stopped need not start again.
type Pool struct {
	mu      sync.Mutex
	cursors []*cursor // oldest first
	max     int
	// chunks are the decompressed spans of gzip layers read lately,
	// oldest first: a span holds the files of a few directories, which
	// find, grep -r and diff -r read in name order, not the tar's.
	chunks    []*chunk
	maxChunks int
	// free are the buffers of spans evicted, for the next ones: spans
	// are made and dropped all along a tar -c, and the garbage of each
	// would grow the heap by its size.
	free [][]byte
}

// NewPool keeps up to max decompressors (each up to a zstd window or a
// 32 KiB inflate window, and a 64 KiB read buffer), and up to max
// decompressed gzip spans (about a span each, 4 MiB by default).
func NewPool(max int) *Pool { return &Pool{max: max, maxChunks: max} }

// take removes the cursor of layer d that reaches off by decompressing
// the fewest bytes, fewer than limit; nil if none does.
func (p *Pool) take(d digest.Digest, off, limit int64) *cursor {
	p.mu.Lock()
	defer p.mu.Unlock()
	best := -1
	for i, c := range p.cursors {
		if c.digest == d && c.pos <= off && off-c.pos < limit && (best < 0 || c.pos > p.cursors[best].pos) {
			best = i
		}
	}
	if best < 0 {
		return nil
	}
	c := p.cursors[best]
	p.cursors = append(p.cursors[:best], p.cursors[best+1:]...)
	return c
}

func (p *Pool) put(c *cursor) {
	p.mu.Lock()
	p.cursors = append(p.cursors, c)
	var evicted []*cursor
	for len(p.cursors) > p.max {
		evicted = append(evicted, p.cursors[0])
		p.cursors = p.cursors[1:]
	}
	p.mu.Unlock()
	for _, c := range evicted {
		c.close()
	}
}

// NewReader reads the layer of idx from blob, its bytes (with a pool of
// its own, for one decompressed span).
func NewReader(idx *Index, blob io.ReaderAt) *Reader {
	return &Reader{idx: idx, blob: blob, pool: NewPool(1), ownPool: true, reopen: func() (io.ReaderAt, io.Closer, error) {
		return blob, io.NopCloser(nil), nil
	}}
}

// NewPooledReader is NewReader sharing decompressors through pool;
// reopen opens the blob again for a decompressor to own.
func NewPooledReader(idx *Index, blob io.ReaderAt, pool *Pool, reopen func() (io.ReaderAt, io.Closer, error)) *Reader {
	return &Reader{idx: idx, blob: blob, pool: pool, reopen: reopen}
}

// Inflated is how many bytes the reader decompressed so far (what a read
// cost beyond the bytes it returned).
func (r *Reader) Inflated() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.inflated
}

// Close frees the decompressor, or gives it to the pool.
func (r *Reader) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.release()
	if r.ownPool {
		r.pool.empty()
	}
	return nil
}

func (r *Reader) release() {
	if r.cur == nil {
		return
	}
	if r.pool != nil {
		r.pool.put(r.cur)
	} else {
		r.cur.close()
	}
	r.cur = nil
}

// ReadAt reads the uncompressed stream at off.
func (r *Reader) ReadAt(p []byte, off int64) (int, error) {
	if r.idx.Compression == Uncompressed {
		return r.blob.ReadAt(p, off)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.idx.Compression == Gzip {
		return r.readChunks(p, off)
	}
	if err := r.seek(off); err != nil {
		return 0, err
	}
	n, err := io.ReadFull(r.cur.stream, p)
	r.cur.pos += int64(n)
	r.inflated += int64(n)
	if err == io.ErrUnexpectedEOF {
		err = io.EOF
	}
	if err != nil && err != io.EOF {
		r.cur.close()
		r.cur = nil
	}
	return n, err
}

// resume starts inflating blob at checkpoint cp, its window read from
// the index file if the index does not hold it.
func (r *Reader) resume(blob io.ReaderAt, cp *Checkpoint) (io.Reader, error) {
	w, err := r.idx.window(cp)
	if err != nil {
		return nil, err
	}
	withWindow := *cp
	withWindow.Window = w
	return resumeGzip(blob, r.idx.Size, &withWindow)
}

// restartCost is what starting afresh to reach off decompresses.
func (r *Reader) restartCost(off int64) int64 {
	if cp := r.idx.checkpointBefore(off); cp != nil {
		return off - cp.Out
	}
	return off
}

// seek positions a decompressor at off: the Reader's own, one from the
// pool, or a new one, whichever decompresses least.
func (r *Reader) seek(off int64) error {
	limit := r.restartCost(off) + 1
	if r.cur == nil || r.cur.pos > off || off-r.cur.pos >= limit {
		r.release()
		if r.pool != nil {
			r.cur = r.pool.take(r.idx.Digest, off, limit)
		}
		if r.cur == nil {
			c, err := r.start(off)
			if err != nil {
				return errors.WithMessagef(err, "layer %s", r.idx.Digest)
			}
			r.cur = c
		}
	}
	if off > r.cur.pos {
		n, err := io.CopyN(io.Discard, r.cur.stream, off-r.cur.pos)
		r.cur.pos += n
		r.inflated += n
		if err != nil {
			r.cur.close()
			r.cur = nil
			if err == io.EOF {
				return io.EOF
			}
			return errors.Wrapf(err, "layer %s", r.idx.Digest)
		}
	}
	return nil
}

// start opens a decompressor at the nearest place before off.
func (r *Reader) start(off int64) (*cursor, error) {
	c := &cursor{digest: r.idx.Digest}
	blob := r.blob
	if r.pool != nil {
		b, closer, err := r.reopen()
		if err != nil {
			return nil, err
		}
		blob = b
		c.closers = append(c.closers, closer)
	}
	fail := func(err error) (*cursor, error) {
		c.close()
		return nil, err
	}
	switch r.idx.Compression {
	case Gzip:
		if cp := r.idx.checkpointBefore(off); cp != nil {
			s, err := r.resume(blob, cp)
			if err != nil {
				return fail(err)
			}
			c.stream, c.pos = s, cp.Out
			return c, nil
		}
		s, err := newGzipStream(bufio.NewReaderSize(io.NewSectionReader(blob, 0, r.idx.Size), 64<<10), 0)
		if err != nil {
			return fail(errors.Wrap(err, "gzip"))
		}
		c.stream = s
	case Zstd:
		z, err := newZstdReader(bufio.NewReaderSize(io.NewSectionReader(blob, 0, r.idx.Size), 64<<10))
		if err != nil {
			return fail(errors.Wrap(err, "zstd"))
		}
		c.stream = z
		c.closers = append(c.closers, z)
	default:
		return fail(errors.Errorf("compression %q", r.idx.Compression))
	}
	return c, nil
}

// checkpointAfter is the index of the first checkpoint past off, -1 if
// none.
func (idx *Index) checkpointAfter(off int64) int {
	i := sort.Search(len(idx.Checkpoints), func(i int) bool { return idx.Checkpoints[i].Out > off })
	if i == len(idx.Checkpoints) {
		return -1
	}
	return i
}

// checkpointBefore is the last checkpoint at or before off, nil if none.
func (idx *Index) checkpointBefore(off int64) *Checkpoint {
	lo, hi := 0, len(idx.Checkpoints)
	for lo < hi {
		mid := (lo + hi) / 2
		if idx.Checkpoints[mid].Out <= off {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	if lo == 0 {
		return nil
	}
	return &idx.Checkpoints[lo-1]
}

// streamFrom is the uncompressed stream from off on, read through r.
type streamFrom struct {
	r   *Reader
	off int64
}

func (s *streamFrom) Read(p []byte) (int, error) {
	n, err := s.r.ReadAt(p, s.off)
	s.off += int64(n)
	if n > 0 && err == io.EOF {
		err = nil
	}
	return n, err
}

// FileReader reads the bytes of regular entry e of the reader's layer.
type FileReader struct {
	r *Reader
	e *Entry
	// A sparse file is read through a tar reader from its header on,
	// forward; sparsePos is where it stands.
	sparse    *tar.Reader
	sparsePos int64
}

// File reads entry e (a Regular entry of the layer r reads).
func (r *Reader) File(e *Entry) *FileReader { return &FileReader{r: r, e: e} }

// ReadAt reads the file's bytes at off.
func (f *FileReader) ReadAt(p []byte, off int64) (int, error) {
	if off >= f.e.Size {
		return 0, io.EOF
	}
	short := false
	if rest := f.e.Size - off; int64(len(p)) > rest {
		p, short = p[:rest], true
	}
	var n int
	var err error
	if f.e.Sparse {
		n, err = f.readSparse(p, off)
	} else {
		n, err = f.r.ReadAt(p, f.e.Data+off)
	}
	if err == io.EOF && n < len(p) {
		err = errors.Errorf("layer %s: %q ends before its size", f.r.idx.Digest, f.e.Name)
	}
	if err == nil && short {
		err = io.EOF
	}
	return n, err
}

func (f *FileReader) readSparse(p []byte, off int64) (int, error) {
	if f.sparse == nil || off < f.sparsePos {
		f.sparse = tar.NewReader(&streamFrom{r: f.r, off: f.e.Header})
		if _, err := f.sparse.Next(); err != nil {
			return 0, errors.Wrapf(err, "layer %s: %q", f.r.idx.Digest, f.e.Name)
		}
		f.sparsePos = 0
	}
	if off > f.sparsePos {
		n, err := io.CopyN(io.Discard, f.sparse, off-f.sparsePos)
		f.sparsePos += n
		if err != nil {
			f.sparse = nil
			return 0, err
		}
	}
	n, err := io.ReadFull(f.sparse, p)
	f.sparsePos += int64(n)
	if err == io.ErrUnexpectedEOF {
		err = io.EOF
	}
	return n, err
}
