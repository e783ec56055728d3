package fs

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/opencontainers/go-digest"
)

// Handles of one layer share one open blob until it is retired (after
// blobRecheck), and its last handle closes it.
func TestLayerBlobsShareAndClose(t *testing.T) {
	path := filepath.Join(t.TempDir(), "blob")
	if err := os.WriteFile(path, []byte("layer"), 0o600); err != nil {
		t.Fatal(err)
	}
	opens := 0
	open := func() (*os.File, error) { opens++; return os.Open(path) }
	layer := digest.FromString("layer")
	var c layerBlobs
	a, err := c.acquire(layer, open)
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.acquire(layer, open)
	if err != nil {
		t.Fatal(err)
	}
	if a != b || opens != 1 {
		t.Fatalf("two handles: %d opens, same blob %v; want 1, true", opens, a == b)
	}
	c.mu.Lock()
	c.retire(layer, a)
	c.mu.Unlock()
	if _, err := a.file.Stat(); err != nil {
		t.Fatalf("retired blob closed while two handles use it: %v", err)
	}
	fresh, err := c.acquire(layer, open)
	if err != nil {
		t.Fatal(err)
	}
	if fresh == a || opens != 2 {
		t.Fatalf("after retiring: %d opens, same blob %v; want 2, false", opens, fresh == a)
	}
	c.release(a)
	if _, err := a.file.Stat(); err != nil {
		t.Fatalf("retired blob closed while a handle uses it: %v", err)
	}
	c.release(b)
	if _, err := a.file.Stat(); err == nil {
		t.Fatal("retired blob still open after its last handle")
	}
	// Retired with no handle: closed at once.
	c.release(fresh)
	c.mu.Lock()
	c.retire(layer, fresh)
	c.mu.Unlock()
	if _, err := fresh.file.Stat(); err == nil {
		t.Fatal("retired blob with no handle still open")
	}
	if len(c.open) != 0 {
		t.Fatalf("%d blobs still handed out", len(c.open))
	}
}
