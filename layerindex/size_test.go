package layerindex

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

// manyEntriesTar is a tar of n small files spread over a few levels of
// directories, with names as long as a real tree's.
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

func TestTimeLoad(t *testing.T) {
	blob := gz(t, manyEntriesTar(t, 50000))
	d := digest.FromBytes(blob)
	dir := t.TempDir()
	c, _ := OpenCache(dir, BuildOptions{})
	open := func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(blob)), nil }
	start := time.Now()
	if _, err := c.Get(d, int64(len(blob)), open); err != nil {
		t.Fatal(err)
	}
	t.Logf("build %v", time.Since(start))
	c2, _ := OpenCache(dir, BuildOptions{})
	start = time.Now()
	idx, err := c2.Get(d, int64(len(blob)), open)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("load %v", time.Since(start))
	start = time.Now()
	Merge([]*Index{idx})
	t.Logf("merge %v", time.Since(start))
}

func BenchmarkMerge(b *testing.B) {
	blob := gz(b, manyEntriesTar(b, 50000))
	idx := build(b, blob, 0)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		Merge([]*Index{idx})
	}
}
