package layerindex

import (
	"archive/tar"
	"bufio"
	"io"
	"sync"

	"github.com/pkg/errors"
)

// Reader reads a layer's uncompressed tar stream at any offset, from the
// blob the index was built of. A plain tar is read where it lies; a
// compressed one is decompressed forward from the nearest place it can
// start (the stream's start, or a gzip checkpoint), and a read that goes
// on where the last one stopped goes on decompressing. One Reader serves
// one reader at a time (its methods lock): give each open file its own.
type Reader struct {
	idx  *Index
	blob io.ReaderAt

	mu     sync.Mutex
	stream io.Reader // decompressed, positioned at pos
	closer io.Closer
	pos    int64
	// inflated counts the bytes decompressed, discarded ones included.
	inflated int64
}

// NewReader reads the layer of idx from blob, its bytes.
func NewReader(idx *Index, blob io.ReaderAt) *Reader {
	return &Reader{idx: idx, blob: blob}
}

// Inflated is how many bytes the reader decompressed so far (what a read
// cost beyond the bytes it returned).
func (r *Reader) Inflated() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.inflated
}

// Close frees the decompressor.
func (r *Reader) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.drop()
	return nil
}

func (r *Reader) drop() {
	if r.closer != nil {
		r.closer.Close()
	}
	r.stream, r.closer = nil, nil
}

// ReadAt reads the uncompressed stream at off.
func (r *Reader) ReadAt(p []byte, off int64) (int, error) {
	if r.idx.Compression == Uncompressed {
		return r.blob.ReadAt(p, off)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.seek(off); err != nil {
		return 0, err
	}
	n, err := io.ReadFull(r.stream, p)
	r.pos += int64(n)
	r.inflated += int64(n)
	if err == io.ErrUnexpectedEOF {
		err = io.EOF
	}
	if err != nil && err != io.EOF {
		r.drop()
	}
	return n, err
}

// seek positions the decompressed stream at off.
func (r *Reader) seek(off int64) error {
	if r.stream == nil || off < r.pos || r.closerStart(off) > r.pos {
		r.drop()
		if err := r.start(off); err != nil {
			return errors.WithMessagef(err, "layer %s", r.idx.Digest)
		}
	}
	if off > r.pos {
		n, err := io.CopyN(io.Discard, r.stream, off-r.pos)
		r.pos += n
		r.inflated += n
		if err != nil {
			r.drop()
			if err == io.EOF {
				return io.EOF
			}
			return errors.Wrapf(err, "layer %s", r.idx.Digest)
		}
	}
	return nil
}

// closerStart is the nearest place at or before off where decompressing
// can start.
func (r *Reader) closerStart(off int64) int64 {
	if cp := r.idx.checkpointBefore(off); cp != nil {
		return cp.Out
	}
	return 0
}

// start opens a decompressor at the nearest place before off.
func (r *Reader) start(off int64) error {
	switch r.idx.Compression {
	case Gzip:
		if cp := r.idx.checkpointBefore(off); cp != nil {
			s, err := resumeGzip(r.blob, r.idx.Size, cp)
			if err != nil {
				return err
			}
			r.stream, r.closer, r.pos = s, nil, cp.Out
			return nil
		}
		s, err := newGzipStream(bufio.NewReaderSize(io.NewSectionReader(r.blob, 0, r.idx.Size), 64<<10), 0)
		if err != nil {
			return errors.Wrap(err, "gzip")
		}
		r.stream, r.pos = s, 0
	case Zstd:
		z, err := newZstdReader(bufio.NewReaderSize(io.NewSectionReader(r.blob, 0, r.idx.Size), 64<<10))
		if err != nil {
			return errors.Wrap(err, "zstd")
		}
		r.stream, r.closer, r.pos = z, z, 0
	default:
		return errors.Errorf("compression %q", r.idx.Compression)
	}
	return nil
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
