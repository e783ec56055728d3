package client

import (
	"os"
	"path/filepath"
	"sync"
	"testing"
)

func newRefDirs(images, path string) *refDirs {
	return &refDirs{images: images, path: path, done: make(chan struct{})}
}

// A pull that found its ref's directories made by another pull still
// creates its image after that pull failed and removed them.
func TestRefDirsRemovedByAFailedPull(t *testing.T) {
	images := t.TempDir()
	dir := filepath.Join(images, "reg.example:5000", "lib")
	a, b := newRefDirs(images, dir), newRefDirs(images, dir)
	if err := a.wait(); err != nil {
		t.Fatalf("pull A making %s: %v", dir, err)
	}
	if err := b.wait(); err != nil {
		t.Fatalf("pull B making %s (there already): %v", dir, err)
	}
	if len(b.made) != 0 {
		t.Fatalf("pull B made %v, which pull A had made", b.made)
	}
	a.remove() // pull A failed
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("stat %s after pull A removed it: %v, want it gone", dir, err)
	}
	target := Namespace{Name: "x"}.Target()
	path := filepath.Join(dir, "app:v1")
	if err := target.WriteImage("reg.example:5000/lib/app:v1", path, []byte("{}")); err != nil {
		t.Fatalf("pull B's image after pull A's failure: %v", err)
	}
	if got, err := os.ReadFile(path); err != nil || string(got) != "{}" {
		t.Fatalf("read %s: %q, %v", path, got, err)
	}
}

// A pull that fails and removes its directories while another makes the
// same chain never makes that one fail: a mkdir of a chain whose parent
// went gets ENOENT, and the chain is made again.
func TestRefDirsChainRaceWithAFailedPull(t *testing.T) {
	images := t.TempDir()
	dir := filepath.Join(images, "reg.example:5000", "org", "team", "lib")
	target := Namespace{Name: "x"}.Target()
	for i := 0; i < 500; i++ {
		a, b := newRefDirs(images, dir), newRefDirs(images, dir)
		if err := a.wait(); err != nil {
			t.Fatalf("attempt %d: pull A making %s: %v", i, dir, err)
		}
		var wg sync.WaitGroup
		wg.Add(1)
		go func() { defer wg.Done(); a.remove() }() // pull A failed
		err := b.wait()
		wg.Wait()
		if err != nil {
			t.Fatalf("attempt %d: pull B making %s while pull A removes it: %v", i, dir, err)
		}
		// Pull A may also have removed them after pull B found them:
		// the image's create makes them again.
		path := filepath.Join(dir, "app:v1")
		if err := target.WriteImage("reg.example:5000/org/team/lib/app:v1", path, []byte("{}")); err != nil {
			t.Fatalf("attempt %d: pull B's image after pull A's failure: %v", i, err)
		}
		if err := os.RemoveAll(filepath.Join(images, "reg.example:5000")); err != nil {
			t.Fatal(err)
		}
	}
}
