package integration

import (
	"fmt"
	"io"
	"os"
	"strings"
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

// A rewind (rewinddir, lseek 0) of an open images/ directory lists every
// change made through another path before it, at once, though the kernel
// may have kept the listing it read: refs a write of index.json adds to a
// directory or removes from it, and a ref removed with rm.
func TestRewindShowsChangesAtOnce(t *testing.T) {
	t.Parallel()
	d := startNsfs(t)
	dir := linkImages(t, d, 20)
	empty := imagePath("default", "lib/empty")
	mustRun(t, d.mnt, "mkdir", d.path(empty))
	buf := make([]byte, 32<<10)
	open := func(dir string) int {
		fd, err := unix.Open(d.path(dir), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { unix.Close(fd) })
		return fd
	}
	rewound := func(fd int) map[string]bool {
		t.Helper()
		if _, err := unix.Seek(fd, 0, io.SeekStart); err != nil {
			t.Fatalf("rewinddir: %v", err)
		}
		names := map[string]bool{}
		for _, name := range readNames(t, fd, buf, nil) {
			names[name] = true
		}
		return names
	}

	// A directory whose names the kernel knows none of: nothing tells
	// the kernel of a name a write of index.json makes in it.
	fd := open(empty)
	if names := rewound(fd); len(names) != 0 {
		t.Fatalf("ls %s: %v, want nothing", empty, names)
	}
	rewriteIndex(t, d, "", "lib/empty/new")
	if names := rewound(fd); !names["new"] || len(names) != 1 {
		t.Errorf("ls %s after rewinddir, right after a write of index.json made new there: %v", empty, names)
	}
	rewriteIndex(t, d, "lib/empty/new", "")
	if names := rewound(fd); len(names) != 0 {
		t.Errorf("ls %s after rewinddir, right after a write of index.json removed new: %v", empty, names)
	}

	fd = open(dir)
	if names := rewound(fd); !names["app:7"] || !names["app:8"] || len(names) != 21 {
		t.Fatalf("ls %s: %v", dir, names)
	}
	rewriteIndex(t, d, "lib/app:7", "lib/added")
	if names := rewound(fd); names["app:7"] || !names["added"] || len(names) != 21 {
		t.Errorf("ls %s after rewinddir, right after a write of index.json removed app:7 and made added: %v", dir, names)
	}
	mustRun(t, d.mnt, "rm", dir+"/app:8")
	if names := rewound(fd); names["app:8"] || len(names) != 20 {
		t.Errorf("ls %s after rewinddir, right after rm app:8: %v", dir, names)
	}
}

// A write of index.json that makes a ref below a new directory moves
// images/'s mtime, and a stat right after shows it, though the kernel
// holds images/'s attributes from a utimes a moment before. rsync -a
// sets a directory's time, and once the directory is done sets it again
// only if a stat shows it differs: into a namespace, its generator sets
// images/'s time while its receiver renames index.json into place, and
// when the rename came second the store kept the rename's time, which
// the next rsync found changed (TestRsyncTwiceWritesNothing, rarely).
func TestIndexWriteShowsDirectoryTimesAtOnce(t *testing.T) {
	t.Parallel()
	d := startNsfs(t)
	mustRun(t, d.mnt, "mkdir", "ns/new")
	img := newImage(140, "amd64", 100)
	for _, b := range img.blobs() {
		d.putBlob(t, "new", b)
	}
	images := imagePath("new", "")
	const touched = "1577836800\n" // 2020-01-01 UTC
	// writeIndex names img as ref in index.json, written in place or by a
	// rename onto it, as rsync does.
	writeIndex := func(ref string, rename bool) {
		t.Helper()
		desc := map[string]any{"mediaType": img.manifest.mediaType, "digest": img.manifest.digest(), "size": len(img.manifest.data),
			"annotations": map[string]string{"org.opencontainers.image.ref.name": ref}}
		data := mustJSON(map[string]any{"schemaVersion": 2, "mediaType": mediaTypeOCIIndex, "manifests": []any{desc}})
		index := d.path("ns", "new", "index.json")
		if !rename {
			if err := os.WriteFile(index, data, 0o644); err != nil {
				t.Fatalf("write index.json: %v", err)
			}
			return
		}
		temp := d.path("ns", "new", ".index.json.tmp")
		if err := os.WriteFile(temp, data, 0o644); err != nil {
			t.Fatalf("write %s: %v", temp, err)
		}
		if err := os.Rename(temp, index); err != nil {
			t.Fatalf("mv %s index.json: %v", temp, err)
		}
	}
	for _, rename := range []bool{false, true} {
		ref := fmt.Sprintf("dir%v/app", rename)
		mustRun(t, d.mnt, "touch", "-d", "@1577836800", images)
		if got := mustRun(t, d.mnt, "stat", "-c", "%Y", images); got != touched {
			t.Fatalf("stat -c %%Y %s after touch: %s", images, got)
		}
		writeIndex(ref, rename)
		if got := mustRun(t, d.mnt, "stat", "-c", "%Y", images); got == touched {
			t.Errorf("stat -c %%Y %s right after a write of index.json (rename %v) made %s: %s, the time before", images, rename, ref, strings.TrimSpace(got))
		}
	}
}
