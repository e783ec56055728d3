package layerindex

import (
	"bytes"
	"io"
	"math/rand"
	"sync"
	"testing"
)

// Readers of one pool on several goroutines, with fewer spans kept than
// they read, get the bytes of the tar: a span evicted while one reads it
// is not reused under it.
func TestPoolSpansSharedByConcurrentReaders(t *testing.T) {
	tarBytes, files := testTar(t, 60)
	blob := gz(t, tarBytes)
	idx := build(t, blob, 256<<10)
	pool := NewPool(2)
	reopen := func() (io.ReaderAt, io.Closer, error) { return bytes.NewReader(blob), io.NopCloser(nil), nil }
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func(seed int64) {
			defer wg.Done()
			for _, i := range rand.New(rand.NewSource(seed)).Perm(idx.Len()) {
				e := idx.Entry(i)
				r := NewPooledReader(idx, bytes.NewReader(blob), pool, reopen)
				got := make([]byte, e.Size)
				n, err := r.File(&e).ReadAt(got, 0)
				r.Close()
				if (err != nil && err != io.EOF) || !bytes.Equal(got[:n], files[e.Name]) {
					t.Errorf("%s: %d bytes, %v", e.Name, n, err)
					return
				}
			}
		}(int64(g))
	}
	wg.Wait()
}

// The first read of a small file inflates its span up to the file (and
// a little more), not to the span's end.
func TestFirstReadInflatesUpToTheFile(t *testing.T) {
	tarBytes, _ := testTar(t, 60)
	blob := gz(t, tarBytes)
	const span = 4 << 20
	idx := build(t, blob, span)
	var first *Entry
	for i := 0; i < idx.Len(); i++ {
		if e := idx.Entry(i); e.Size > 0 && e.Data > 64<<10 {
			first = &e
			break
		}
	}
	r := NewReader(idx, bytes.NewReader(blob))
	defer r.Close()
	buf := make([]byte, 4096)
	if _, err := r.File(first).ReadAt(buf, 0); err != nil && err != io.EOF {
		t.Fatal(err)
	}
	if got, limit := r.Inflated(), first.Data+int64(len(buf))+spanReadahead; got > limit || idx.TarSize < span {
		t.Fatalf("reading 4 KiB at %d inflated %d bytes (a %d-byte tar), want at most %d", first.Data, got, idx.TarSize, limit)
	}
}
