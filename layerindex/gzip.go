package layerindex

import (
	"bufio"
	"encoding/binary"
	"io"

	"github.com/nsfs/nsfs/layerindex/internal/flate"
	"github.com/pkg/errors"
)

// byteCounter is a bufio.Reader that counts the bytes taken from it: the
// offset in the blob of what the inflater reads next.
type byteCounter struct {
	r *bufio.Reader
	n int64
}

func (c *byteCounter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func (c *byteCounter) ReadByte() (byte, error) {
	b, err := c.r.ReadByte()
	if err == nil {
		c.n++
	}
	return b, err
}

// gzipStream inflates the members of a gzip stream one after another,
// optionally noting a checkpoint at the first block start past every
// span bytes of output. It does not check the members' CRCs: a layer is
// verified whole against its digest when it is indexed, and a read from
// a checkpoint cannot check them.
type gzipStream struct {
	in    *byteCounter
	inf   io.ReadCloser
	out   int64 // output so far, across members
	start int64 // output offset where the current member's inflater started

	span        int64 // 0: no checkpoints
	checkpoints []Checkpoint
}

// newGzipStream reads a gzip stream from its first byte.
func newGzipStream(r *bufio.Reader, span int64) (*gzipStream, error) {
	g := &gzipStream{in: &byteCounter{r: r}, span: span}
	if err := g.nextMember(true); err != nil {
		return nil, err
	}
	return g, nil
}

// resumeGzip starts inflating at checkpoint cp of the blob.
func resumeGzip(blob io.ReaderAt, size int64, cp *Checkpoint) (io.Reader, error) {
	in := &byteCounter{r: bufio.NewReaderSize(io.NewSectionReader(blob, cp.In, size-cp.In), 64<<10), n: cp.In}
	inf, err := flate.NewReaderAt(in, uint(cp.Bits), cp.Window)
	if err != nil {
		return nil, errors.Wrapf(err, "gzip checkpoint at %d", cp.In)
	}
	return &gzipStream{in: in, inf: inf, out: cp.Out, start: cp.Out}, nil
}

func (g *gzipStream) Read(p []byte) (int, error) {
	for {
		if g.inf == nil {
			return 0, io.EOF
		}
		n, err := g.inf.Read(p)
		g.out += int64(n)
		if err == io.EOF {
			if terr := g.endMember(); terr != nil {
				return n, terr
			}
			if n > 0 {
				return n, nil
			}
			continue
		}
		return n, err
	}
}

// endMember reads the member's trailer and starts the next member, if
// one follows.
func (g *gzipStream) endMember() error {
	var trailer [8]byte
	if _, err := io.ReadFull(g.in, trailer[:]); err != nil {
		return errors.Wrap(noEOF(err), "gzip trailer")
	}
	g.inf = nil
	return g.nextMember(false)
}

// nextMember reads a member's header and starts its inflater; past the
// last member (end of input, or bytes that are not a gzip header, which
// gzip -d ignores with a warning) the stream ends.
func (g *gzipStream) nextMember(first bool) error {
	var hdr [10]byte
	if _, err := io.ReadFull(g.in, hdr[:]); err != nil {
		if !first && (err == io.EOF || err == io.ErrUnexpectedEOF) {
			return nil
		}
		return errors.Wrap(noEOF(err), "gzip header")
	}
	if hdr[0] != 0x1f || hdr[1] != 0x8b || hdr[2] != 8 {
		if first {
			return errors.New("gzip: not a gzip header")
		}
		return nil
	}
	flg := hdr[3]
	if flg&0x04 != 0 { // FEXTRA
		var xlen [2]byte
		if _, err := io.ReadFull(g.in, xlen[:]); err != nil {
			return errors.Wrap(noEOF(err), "gzip header")
		}
		if _, err := io.CopyN(io.Discard, g.in, int64(binary.LittleEndian.Uint16(xlen[:]))); err != nil {
			return errors.Wrap(noEOF(err), "gzip header")
		}
	}
	for _, bit := range []byte{0x08, 0x10} { // FNAME, FCOMMENT: zero-terminated
		if flg&bit == 0 {
			continue
		}
		for {
			c, err := g.in.ReadByte()
			if err != nil {
				return errors.Wrap(noEOF(err), "gzip header")
			}
			if c == 0 {
				break
			}
		}
	}
	if flg&0x02 != 0 { // FHCRC
		if _, err := io.CopyN(io.Discard, g.in, 2); err != nil {
			return errors.Wrap(noEOF(err), "gzip header")
		}
	}
	g.start = g.out
	if g.span <= 0 {
		g.inf = flate.NewReader(g.in)
		return nil
	}
	memberIn := g.in.n
	last := int64(-1)
	if n := len(g.checkpoints); n > 0 {
		last = g.checkpoints[n-1].Out
	}
	start := g.start
	g.inf = flate.NewReaderHook(g.in, func(bitPos, out int64, window func() []byte) {
		at := start + out
		if at == 0 || (last >= 0 && at-last < g.span) || (last < 0 && at < g.span) {
			return
		}
		last = at
		bit := memberIn*8 + bitPos
		g.checkpoints = append(g.checkpoints, Checkpoint{In: bit / 8, Bits: uint8(bit % 8), Out: at, Window: window()})
	})
	return nil
}

func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}
