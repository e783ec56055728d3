package layerindex

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/opencontainers/go-digest"
)

// manyEntriesTar is a tar of n small files spread over directories of
// 20, with names as long as a real tree's (about 60 bytes).
func manyEntriesTar(t testing.TB, n int) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for i := 0; i < n; i++ {
		if i%20 == 0 {
			tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("usr/share/pkg%04d/doc%02d/", i/400, i/20%20), Typeflag: tar.TypeDir, Mode: 0o755})
		}
		data := []byte(fmt.Sprintf("file %d\n", i))
		tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("usr/share/pkg%04d/doc%02d/some-file-name-%06d.txt", i/400, i/20%20, i), Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(data))})
		tw.Write(data)
	}
	tw.Close()
	return buf.Bytes()
}

func heapInUse() (inUse, allocated uint64) {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc, m.TotalAlloc
}

// An index read from its file and the merged tree of its layer hold a
// bounded number of bytes per entry (names included), whatever the
// layer's size: no struct or string per entry, no windows.
func TestMemoryPerEntryIsBounded(t *testing.T) {
	const n = 50000
	blob := gz(t, manyEntriesTar(t, n))
	d := digest.FromBytes(blob)
	dir := t.TempDir()
	c, _ := OpenCache(dir, BuildOptions{Span: 64 << 10}) // many checkpoints
	open := func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(blob)), nil }
	if _, err := c.Get(d, int64(len(blob)), open); err != nil {
		t.Fatal(err)
	}
	before, allocatedBefore := heapInUse()
	c2, _ := OpenCache(dir, BuildOptions{})
	idx, err := c2.Get(d, int64(len(blob)), open)
	if err != nil || c2.Builds.Load() != 0 {
		t.Fatalf("Get from the file: %v, %d builds", err, c2.Builds.Load())
	}
	if len(idx.Checkpoints) < 20 {
		t.Fatalf("%d checkpoints, want many", len(idx.Checkpoints))
	}
	tree, err := Merge([]*Index{idx})
	if err != nil {
		t.Fatal(err)
	}
	after, allocatedAfter := heapInUse()
	held, allocated := after-before, allocatedAfter-allocatedBefore
	entries := uint64(idx.Len())
	// Loading and merging allocate a few times what they keep, not a
	// struct, strings and map entries per entry.
	t.Logf("loading and merging allocated %d bytes, %d per entry", allocated, allocated/entries)
	if allocated/entries > 600 {
		t.Fatalf("loading and merging %d entries allocated %d bytes, %d per entry; want at most 600", entries, allocated, allocated/entries)
	}
	// The table: about 25 bytes and the name (60) per entry, its offset
	// 4; the tree: 24 per name and 12 per inode.
	const bound = 150
	t.Logf("%d entries, %d checkpoints: %d bytes held, %d per entry", entries, len(idx.Checkpoints), held, held/entries)
	if held/entries > bound {
		t.Fatalf("an index and tree of %d entries hold %d bytes, %d per entry; want at most %d", entries, held, held/entries, bound)
	}
	if tree.Inodes < uint64(n) {
		t.Fatalf("%d inodes, want at least %d", tree.Inodes, n)
	}
	runtime.KeepAlive(tree)
	runtime.KeepAlive(c2)
}

// Loading an index after a remount reads its table, not its windows:
// a file read after another file decompresses from the checkpoint
// before it, its window read from the index file then.
func TestLoadReadsWindowsOnlyWhenAReadStartsThere(t *testing.T) {
	tarBytes, files := testTar(t, 60)
	blob := gz(t, tarBytes)
	d := digest.FromBytes(blob)
	dir := t.TempDir()
	c, _ := OpenCache(dir, BuildOptions{Span: 1 << 20})
	open := func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(blob)), nil }
	built, err := c.Get(d, int64(len(blob)), open)
	if err != nil {
		t.Fatal(err)
	}
	for i, cp := range built.Checkpoints {
		if cp.Window != nil {
			t.Fatalf("checkpoint %d keeps its window in memory after the file is written", i)
		}
	}
	c2, _ := OpenCache(dir, BuildOptions{})
	idx, err := c2.Get(d, int64(len(blob)), open)
	if err != nil || c2.Builds.Load() != 0 {
		t.Fatalf("Get from the file: %v, %d builds", err, c2.Builds.Load())
	}
	for i, cp := range idx.Checkpoints {
		if cp.Window != nil {
			t.Fatalf("checkpoint %d of a loaded index holds its window", i)
		}
	}
	checkFiles(t, idx, blob, files)
	// A window damaged on disk is known when the file is read again:
	// the index is rebuilt.
	p := filepath.Join(dir, "sha256", d.Encoded())
	data, _ := os.ReadFile(p)
	data[len(data)-10] ^= 0x40
	os.WriteFile(p, data, 0o600)
	c3, _ := OpenCache(dir, BuildOptions{})
	if _, err := c3.Get(d, int64(len(blob)), open); err != nil || c3.Builds.Load() != 1 {
		t.Fatalf("Get of a file with a damaged window: %v, %d builds, want 1", err, c3.Builds.Load())
	}
}

// A file of the earlier format (gzipped JSON), or one cut short, is
// built again.
func TestOldOrCutFileIsRebuilt(t *testing.T) {
	tarBytes, files := testTar(t, 20)
	blob := gz(t, tarBytes)
	d := digest.FromBytes(blob)
	dir := t.TempDir()
	open := func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(blob)), nil }
	p := filepath.Join(dir, "sha256", d.Encoded())
	c, _ := OpenCache(dir, BuildOptions{})
	os.WriteFile(p, []byte("nsfs-layerindex 1 0000\n\x1f\x8b"), 0o600)
	if _, err := c.Get(d, int64(len(blob)), open); err != nil || c.Builds.Load() != 1 {
		t.Fatalf("Get over a version 1 file: %v, %d builds, want 1", err, c.Builds.Load())
	}
	data, _ := os.ReadFile(p)
	for _, cut := range []int{len(data) - 1, len(data) / 2, 30} {
		os.WriteFile(p, data[:cut], 0o600)
		c, _ := OpenCache(dir, BuildOptions{})
		idx, err := c.Get(d, int64(len(blob)), open)
		if err != nil || c.Builds.Load() != 1 {
			t.Fatalf("Get of a file cut at %d of %d: %v, %d builds, want 1", cut, len(data), err, c.Builds.Load())
		}
		checkFiles(t, idx, blob, files)
	}
}

func BenchmarkLoadAndMerge(b *testing.B) {
	blob := gz(b, manyEntriesTar(b, 50000))
	d := digest.FromBytes(blob)
	dir := b.TempDir()
	c, _ := OpenCache(dir, BuildOptions{})
	open := func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(blob)), nil }
	if _, err := c.Get(d, int64(len(blob)), open); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c, _ := OpenCache(dir, BuildOptions{})
		idx, err := c.Get(d, int64(len(blob)), open)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := Merge([]*Index{idx}); err != nil {
			b.Fatal(err)
		}
	}
}
