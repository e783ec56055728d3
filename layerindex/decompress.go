package layerindex

import (
	"io"

	"github.com/klauspost/compress/zstd"
)

// BuildOptions tune Build.
type BuildOptions struct {
	// Span is the uncompressed distance between gzip checkpoints
	// (DefaultSpan when 0).
	Span int64
}

// DefaultSpan keeps the windows near 2% of a gzip layer's size, and a
// read's discarded inflate near 2 MiB on average.
const DefaultSpan = 4 << 20

func (o BuildOptions) span() int64 {
	if o.Span <= 0 {
		return DefaultSpan
	}
	return o.Span
}

// Checkpoint is a place in a gzip stream where inflating can start
// again: the compressed offset In (Bits of the byte before it still
// unread), the uncompressed offset Out, and the 32 KiB that came before
// it, which the next blocks may copy from (an index read from its file
// reads the window from there when a read starts at the checkpoint:
// Window is then nil).
type Checkpoint struct {
	In     int64
	Bits   uint8
	Out    int64
	Window []byte

	file fileWindow
}

// zstdReader is a zstd decoder that frees its goroutines at Close.
type zstdReader struct{ *zstd.Decoder }

func (z zstdReader) Close() error { z.Decoder.Close(); return nil }

func newZstdReader(r io.Reader) (zstdReader, error) {
	// One goroutine: a layer is read by one reader at a time, and the
	// decoder's own concurrency would multiply the daemon's memory.
	d, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true))
	return zstdReader{d}, err
}
