package layerindex

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"math/rand"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/opencontainers/go-digest"
)

// testTar is a tar of n files of mixed sizes and contents (text that
// compresses, random bytes that do not), and the files' bytes by name.
func testTar(t testing.TB, n int) ([]byte, map[string][]byte) {
	rng := rand.New(rand.NewSource(1))
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	files := map[string][]byte{}
	for i := 0; i < n; i++ {
		size := rng.Intn(200 << 10)
		if i%50 == 0 {
			size = 0
		}
		data := make([]byte, size)
		if i%3 == 0 {
			rng.Read(data)
		} else {
			for j := range data {
				data[j] = "abcdefgh\n"[rng.Intn(9)]
			}
		}
		name := fmt.Sprintf("dir%02d/file%04d", i%17, i)
		files[name] = data
		if err := tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(size)}); err != nil {
			t.Fatal(err)
		}
		tw.Write(data)
	}
	tw.Close()
	return buf.Bytes(), files
}

func gz(t testing.TB, b []byte) []byte {
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, 6)
	zw.Write(b)
	zw.Close()
	return buf.Bytes()
}

func build(t testing.TB, blob []byte, span int64) *Index {
	t.Helper()
	idx, err := Build(bytes.NewReader(blob), digest.FromBytes(blob), int64(len(blob)), BuildOptions{Span: span})
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	return idx
}

// checkFiles reads every file of idx from blob, in an order that jumps
// back and forth (zstd, which restarts at each jump back: in tar order),
// and compares it with files.
func checkFiles(t *testing.T, idx *Index, blob []byte, files map[string][]byte) {
	t.Helper()
	if idx.Len() != len(files) {
		t.Fatalf("%d entries, want %d", idx.Len(), len(files))
	}
	r := NewReader(idx, bytes.NewReader(blob))
	defer r.Close()
	order := rand.New(rand.NewSource(2)).Perm(idx.Len())
	if idx.Compression == Zstd {
		sort.Ints(order)
	}
	for _, i := range order {
		entry := idx.Entry(i)
		e := &entry
		got := make([]byte, e.Size)
		n, err := r.File(e).ReadAt(got, 0)
		if err != nil && err != io.EOF {
			t.Fatalf("%s: %v", e.Name, err)
		}
		if !bytes.Equal(got[:n], files[e.Name]) {
			t.Fatalf("%s: %d bytes differ from the tar's", e.Name, n)
		}
	}
}

func TestReadEveryFile(t *testing.T) {
	tarBytes, files := testTar(t, 60)
	zb := bytes.Buffer{}
	zw, _ := zstd.NewWriter(&zb)
	zw.Write(tarBytes)
	zw.Close()
	// Two gzip members: the split falls inside a file.
	half := len(tarBytes) / 2
	members := append(gz(t, tarBytes[:half]), gz(t, tarBytes[half:])...)
	for _, c := range []struct {
		name string
		blob []byte
		want Compression
	}{
		{"tar", tarBytes, Uncompressed},
		{"gzip", gz(t, tarBytes), Gzip},
		{"gzip members", members, Gzip},
		{"zstd", zb.Bytes(), Zstd},
	} {
		t.Run(c.name, func(t *testing.T) {
			idx := build(t, c.blob, 1<<20)
			if idx.Compression != c.want || idx.TarSize < int64(len(tarBytes)) {
				t.Fatalf("compression %s, tar %d bytes; want %s, %d", idx.Compression, idx.TarSize, c.want, len(tarBytes))
			}
			if c.want == Gzip && len(idx.Checkpoints) < int(idx.TarSize>>20)-2 {
				t.Fatalf("%d checkpoints for %d bytes at a 1 MiB span", len(idx.Checkpoints), idx.TarSize)
			}
			checkFiles(t, idx, c.blob, files)
		})
	}
}

// A read near the end of a gzip layer decompresses at most about one
// span, not the layer.
func TestGzipReadCostsOneSpan(t *testing.T) {
	tarBytes, _ := testTar(t, 60)
	blob := gz(t, tarBytes)
	const span = 1 << 20
	idx := build(t, blob, span)
	entry := idx.Entry(idx.Len() - 1)
	last := &entry
	for i := idx.Len() - 1; last.Size == 0; i-- {
		entry = idx.Entry(i)
	}
	r := NewReader(idx, bytes.NewReader(blob))
	defer r.Close()
	buf := make([]byte, 4096)
	if _, err := r.File(last).ReadAt(buf, 0); err != nil && err != io.EOF {
		t.Fatal(err)
	}
	// The checkpoint before the file is less than a span and a block
	// (deflate blocks are at most a few hundred KiB) before it.
	if got := r.Inflated(); got > span+512<<10+int64(len(buf)) {
		t.Fatalf("reading 4 KiB at %d of %d decompressed %d bytes", last.Data, idx.TarSize, got)
	}
	if got := r.Inflated(); got < int64(len(buf)) {
		t.Fatalf("decompressed %d bytes, fewer than it read", got)
	}
}

func TestBuildRefusesWrongBytes(t *testing.T) {
	tarBytes, _ := testTar(t, 5)
	blob := gz(t, tarBytes)
	if _, err := Build(bytes.NewReader(blob), digest.FromBytes([]byte("other")), int64(len(blob)), BuildOptions{}); err == nil {
		t.Fatal("Build of bytes that do not hash to the digest succeeded")
	}
	if _, err := Build(bytes.NewReader(blob), digest.FromBytes(blob), int64(len(blob))+1, BuildOptions{}); err == nil {
		t.Fatal("Build of a blob of the wrong size succeeded")
	}
}

func TestCacheBuildsOnceAndRebuildsDamage(t *testing.T) {
	tarBytes, files := testTar(t, 50)
	blob := gz(t, tarBytes)
	d := digest.FromBytes(blob)
	dir := t.TempDir()
	c, err := OpenCache(dir, BuildOptions{Span: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	open := func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(blob)), nil }
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := c.Get(d, int64(len(blob)), open); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if n := c.Builds.Load(); n != 1 {
		t.Fatalf("%d builds, want 1", n)
	}
	// A new cache (a remount) reads the file.
	c2, _ := OpenCache(dir, BuildOptions{})
	idx, err := c2.Get(d, int64(len(blob)), open)
	if err != nil || c2.Builds.Load() != 0 {
		t.Fatalf("Get from the file: %v, %d builds", err, c2.Builds.Load())
	}
	checkFiles(t, idx, blob, files)
	// A damaged file is rebuilt.
	p := filepath.Join(dir, "sha256", d.Encoded())
	data, _ := os.ReadFile(p)
	data[len(data)/2] ^= 1
	os.WriteFile(p, data, 0o600)
	c3, _ := OpenCache(dir, BuildOptions{})
	if _, err := c3.Get(d, int64(len(blob)), open); err != nil || c3.Builds.Load() != 1 {
		t.Fatalf("Get of a damaged file: %v, %d builds, want 1", err, c3.Builds.Load())
	}
	removed, err := c3.Collect(func(digest.Digest) bool { return false })
	if err != nil || removed != 1 {
		t.Fatalf("Collect: %d, %v", removed, err)
	}
}

// Readers of one file after another, each its own Reader, decompress
// the layer about once through a pool.
func TestPoolGoesOnWhereAReaderStopped(t *testing.T) {
	tarBytes, files := testTar(t, 60)
	blob := gz(t, tarBytes)
	idx := build(t, blob, 1<<20)
	pool := NewPool(2)
	reopen := func() (io.ReaderAt, io.Closer, error) { return bytes.NewReader(blob), io.NopCloser(nil), nil }
	var inflated int64
	for i := 0; i < idx.Len(); i++ {
		entry := idx.Entry(i)
		e := &entry
		r := NewPooledReader(idx, bytes.NewReader(blob), pool, reopen)
		got := make([]byte, e.Size)
		if n, err := r.File(e).ReadAt(got, 0); (err != nil && err != io.EOF) || !bytes.Equal(got[:n], files[e.Name]) {
			t.Fatalf("%s: %d bytes, %v", e.Name, n, err)
		}
		inflated += r.Inflated()
		r.Close()
	}
	if inflated > idx.TarSize {
		t.Fatalf("reading every file in order decompressed %d bytes of a %d-byte tar", inflated, idx.TarSize)
	}
}
