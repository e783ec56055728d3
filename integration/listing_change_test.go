package integration

import (
	"fmt"
	"io"
	"testing"

	"golang.org/x/sys/unix"
)

// A listing read in pieces ends normally when most of its refs are
// removed meanwhile, also when it goes back (seekdir) to a position it
// took (telldir) before a rewind read a smaller snapshot: getdents never
// fails, and every name it returns existed.
func TestListingAcrossRemovalsEndsNormally(t *testing.T) {
	t.Parallel()
	d := startNsfs(t)
	const n = 400
	dir := linkImages(t, d, n)
	existed := map[string]bool{}
	for i := 0; i < n; i++ {
		existed[fmt.Sprintf("app:%d", i)] = true
	}

	fd, err := unix.Open(d.path(dir), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	buf := make([]byte, 512) // a few entries per getdents
	var names []string
	for len(names) < n/2 {
		nb, err := unix.Getdents(fd, buf)
		if err != nil || nb == 0 {
			t.Fatalf("getdents after %d names: %d, %v", len(names), nb, err)
		}
		_, _, names = unix.ParseDirent(buf[:nb], -1, names)
	}
	pos, err := unix.Seek(fd, 0, io.SeekCurrent) // telldir
	if err != nil {
		t.Fatalf("telldir: %v", err)
	}

	// Another path removes every ref but app:0.
	mustSh(t, d.mnt, "rm "+dir+"/app:[1-9]*")

	if _, err := unix.Seek(fd, 0, io.SeekStart); err != nil { // rewinddir
		t.Fatalf("rewinddir: %v", err)
	}
	again := readNames(t, fd, buf, nil)
	if len(again) != 1 || again[0] != "app:0" {
		t.Errorf("the listing after rewinddir has %v, want app:0 alone", again)
	}
	if _, err := unix.Seek(fd, pos, io.SeekStart); err != nil { // seekdir
		t.Fatalf("seekdir %d: %v", pos, err)
	}
	if nb, err := unix.Getdents(fd, buf); err != nil || nb != 0 {
		t.Errorf("getdents at a position past the end of the directory's new listing: %d bytes, %v; want its end", nb, err)
	}
	for _, name := range append(names, again...) {
		if !existed[name] {
			t.Errorf("the listing returned %q, which never existed", name)
		}
	}
}
