package layerindex

import (
	"bufio"
	"bytes"
	"io"
	"strconv"
	"strings"
)

// LooksLikeLayer says whether a blob starts as a layer does: a tar
// header block with a valid checksum (or the zero block of an empty
// tar, or nothing at all), plain or inside gzip or zstd. It reads a few
// KiB: cheap enough to decide which images a listing shows, before any
// index is built.
func LooksLikeLayer(blob io.Reader) bool {
	buffered := bufio.NewReaderSize(blob, 4096)
	magic, _ := buffered.Peek(4)
	var stream io.Reader = buffered
	switch {
	case bytes.HasPrefix(magic, gzipMagic):
		g, err := newGzipStream(buffered, 0)
		if err != nil {
			return false
		}
		stream = g
	case bytes.HasPrefix(magic, zstdMagic):
		z, err := newZstdReader(buffered)
		if err != nil {
			return false
		}
		defer z.Close()
		stream = z
	}
	var block [512]byte
	n, err := io.ReadFull(stream, block[:])
	if n == 0 && (err == io.EOF || err == io.ErrUnexpectedEOF) {
		return true // an empty layer
	}
	if err != nil {
		return false
	}
	return block == [512]byte{} || validHeaderChecksum(&block)
}

// validHeaderChecksum checks a tar header block's checksum field: the
// sum of its bytes with the field itself read as spaces.
func validHeaderChecksum(b *[512]byte) bool {
	field := strings.TrimRight(strings.TrimSpace(strings.Trim(string(b[148:156]), "\x00 ")), "\x00")
	want, err := strconv.ParseInt(field, 8, 64)
	if err != nil {
		return false
	}
	var sum int64
	for i, c := range b {
		if i >= 148 && i < 156 {
			c = ' '
		}
		sum += int64(c)
	}
	return sum == want
}
