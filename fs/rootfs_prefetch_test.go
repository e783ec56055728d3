package fs

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"math/rand"
	"os"
	"path/filepath"
	"testing"

	"github.com/nsfs/nsfs/layerindex"
	"github.com/opencontainers/go-digest"
)

// A pass through a gzip layer in its order, one reader per file as the
// handles make them, reads the right bytes while the spans after the
// first are decompressed in the background: the readers themselves
// inflate a small part of the layer.
func TestPrefetchReadsInOrderFromTheBackground(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	var tarBuf bytes.Buffer
	tw := tar.NewWriter(&tarBuf)
	var names []string
	files := map[string][]byte{}
	text := make([]byte, 64<<10)
	for j := range text {
		text[j] = "abcdefgh\n"[rng.Intn(9)]
	}
	for i := 0; i < 120; i++ {
		at := rng.Intn(len(text) / 2)
		data := text[at : at+rng.Intn(24<<10)]
		name := fmt.Sprintf("d/f%03d", i)
		names, files[name] = append(names, name), data
		if err := tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(data))}); err != nil {
			t.Fatal(err)
		}
		tw.Write(data)
	}
	tw.Close()
	var gzBuf bytes.Buffer
	zw := gzip.NewWriter(&gzBuf)
	zw.Write(tarBuf.Bytes())
	zw.Close()
	blobBytes := gzBuf.Bytes()
	idx, err := layerindex.Build(bytes.NewReader(blobBytes), digest.FromBytes(blobBytes), int64(len(blobBytes)), layerindex.BuildOptions{Span: 16 << 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(idx.Checkpoints) < 10 {
		t.Fatalf("%d checkpoints: the test wants many spans", len(idx.Checkpoints))
	}
	path := filepath.Join(t.TempDir(), "blob")
	if err := os.WriteFile(path, blobBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	blob, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer blob.Close()

	var p spanPrefetch
	pool := layerindex.NewPool(rootfsCursors)
	noCursor := func() (io.ReaderAt, io.Closer, error) { return blob, io.NopCloser(nil), nil }
	var inflated int64
	byName := map[string]*layerindex.Entry{}
	for i := range idx.Len() {
		e := idx.Entry(i)
		byName[e.Name] = &e
	}
	for _, name := range names {
		e := byName[name]
		r := layerindex.NewPooledReader(idx, blob, pool, noCursor)
		f := r.File(e)
		got := make([]byte, 0, e.Size)
		buf := make([]byte, 4<<10) // reads smaller than a span, as the kernel's
		for off := int64(0); off < e.Size; {
			p.wait(context.Background(), idx, e.Data+off)
			p.wait(context.Background(), idx, e.Data+min(off+int64(len(buf)), e.Size)-1)
			n, err := f.ReadAt(buf, off)
			if n > 0 {
				p.read(idx, e.Data+off, blob, pool)
			}
			got = append(got, buf[:n]...)
			off += int64(n)
			if err != nil && err != io.EOF {
				t.Fatalf("%s at %d: %v", name, off, err)
			}
		}
		if !bytes.Equal(got, files[name]) {
			t.Fatalf("%s: %d bytes differ from the tar's %d", name, len(got), len(files[name]))
		}
		inflated += r.Inflated()
		r.Close()
	}
	if inflated > idx.TarSize/4 {
		t.Errorf("the readers inflated %d bytes of a %d-byte stream themselves: the background did not go ahead", inflated, idx.TarSize)
	}
	// A read out of order starts nothing.
	p.read(idx, 0, blob, pool)
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.inflight) != 0 {
		t.Errorf("%d spans under way after a read that went back to the start", len(p.inflight))
	}
}
