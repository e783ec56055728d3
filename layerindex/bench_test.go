package layerindex

import (
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/opencontainers/go-digest"
)

// BenchmarkRealLoadMerge loads the index file LAYERINDEX_FILE (a store's
// layerindex/sha256/<hex>) and merges its tree:
//
//	LAYERINDEX_FILE=/store/layerindex/sha256/<hex> go test -run - -bench Real ./layerindex/
func BenchmarkRealLoadMerge(b *testing.B) {
	src := os.Getenv("LAYERINDEX_FILE")
	if src == "" {
		b.Skip()
	}
	d := digest.NewDigestFromEncoded(digest.SHA256, filepath.Base(src))
	dir := filepath.Dir(filepath.Dir(src))
	b.Run("load", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			c, _ := OpenCache(dir, BuildOptions{})
			if _, err := c.Get(d, -1, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
	c, _ := OpenCache(dir, BuildOptions{})
	idx, _ := c.Get(d, -1, nil)
	b.Run("merge", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			Merge([]*Index{idx})
		}
	})
}

// BenchmarkRealBuild indexes the layer blob LAYERINDEX_BLOB and writes
// its file.
func BenchmarkRealBuild(b *testing.B) {
	src := os.Getenv("LAYERINDEX_BLOB")
	if src == "" {
		b.Skip()
	}
	d := digest.NewDigestFromEncoded(digest.SHA256, filepath.Base(src))
	for i := 0; i < b.N; i++ {
		c, _ := OpenCache(b.TempDir(), BuildOptions{})
		if _, err := c.Get(d, -1, func() (io.ReadCloser, error) { return os.Open(src) }); err != nil {
			b.Fatal(err)
		}
	}
}
