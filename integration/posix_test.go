package integration

// go-fuse's posixtest checks against directories of the mount.
//
// Which apply (go-fuse v2.12.1, posixtest; fs_smoke_test.go runs
// MkdirRmdir and ReadDirConsistency in a prefix directory of images/):
//
//   - MkdirRmdir makes and removes "dir": in ns/ that is a namespace.
//   - ReadDirConsistency reads a directory twice: every kind of directory
//     nsfs has, with enough entries to take several getdents calls.
//   - DirSeek (xfstests generic/257) and XAttr create their own files with
//     os.WriteFile and no bytes: an empty file is no manifest (EINVAL at
//     close) and no blob name is "file" or "1".."168". They cannot run as
//     they are; their assertions run below, unchanged, on directories and
//     files nsfs can have (168 images; a namespace, an image, a blob).
//   - XAttrLarge sets an 8 KiB value: nsfs follows containerd (key and
//     value at most 4096 bytes, E2BIG), and posixtest skips on E2BIG.
//   - The file checks (FileBasic, TruncateFile, AppendWrite, Link*,
//     Rename*, Symlink*, Fallocate, locks, ...) write arbitrary bytes to
//     files or make symlinks: no file of nsfs takes arbitrary bytes.

import (
	"bytes"
	"fmt"
	"os"
	"reflect"
	"syscall"
	"testing"

	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/hanwen/go-fuse/v2/posixtest"
	"golang.org/x/sys/unix"
)

func TestPosixMkdirRmdirInNs(t *testing.T) {
	t.Parallel()
	d := startNsfs(t)
	before := d.state(t)
	withoutForks(func() { posixtest.MkdirRmdir(t, d.path("ns")) })
	d.assertUnchanged(t, "posixtest.MkdirRmdir in ns/", before)
}

// posixDirs fills a store with a directory of each kind; those that can
// hold many entries get more than one getdents buffer (4096 bytes) holds.
func posixDirs(t *testing.T, d *daemon) map[string]string {
	t.Helper()
	img := newImage(9100, "amd64", 100)
	d.putImage(t, "default", "base", img)
	for i := 0; i < 120; i++ {
		if err := writeFileSyscalls(d.path(imagePath("default", fmt.Sprintf("app:v%d", i))), img.manifest.data, 0, false, false); err != nil {
			t.Fatalf("image app:v%d: %v", i, err)
		}
	}
	mustRun(t, d.mnt, "mkdir", "ns/default/images/ttt")
	for i := 1; i <= 168; i++ { // generic/257's 168 files, as images
		if err := writeFileSyscalls(d.path(imagePath("default", fmt.Sprintf("ttt/%d", i))), img.manifest.data, 0, false, false); err != nil {
			t.Fatalf("image ttt/%d: %v", i, err)
		}
	}
	for i := 0; i < 100; i++ {
		b := blob{data: randomBytes(int64(9200+i), 100)}
		if err := writeFileSyscalls(d.path(blobPath("default", b.hex())), b.data, unix.O_EXCL, false, false); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 150; i++ {
		if err := unix.Mkdir(d.path("ns", fmt.Sprintf("tenant-%03d", i)), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return map[string]string{
		"ns":           d.path("ns"),
		"namespace":    d.path("ns/default"),
		"images":       d.path("ns/default/images"),
		"prefix":       d.path("ns/default/images/ttt"),
		"blobs":        d.path("ns/default/blobs"),
		"blobs/sha256": d.path("ns/default/blobs/sha256"),
		"root":         d.mnt,
	}
}

// TestPosixDirectories runs posixtest.ReadDirConsistency on every kind of
// directory, and posixtest.DirSeek's check (xfstests generic/257: seeking
// to each entry's offset and reading gives that entry again) on the same.
func TestPosixDirectories(t *testing.T) {
	t.Parallel()
	d := startNsfs(t)
	dirs := posixDirs(t, d)
	for name, dir := range dirs {
		t.Run("ReadDirConsistency/"+name, func(t *testing.T) { withoutForks(func() { posixtest.ReadDirConsistency(t, dir) }) })
	}
	for name, dir := range dirs {
		minEntries := 100
		switch name {
		case "root", "namespace", "blobs": // fixed contents: ns; images, blobs; sha256
			minEntries = 3
		}
		t.Run("DirSeek/"+name, func(t *testing.T) { dirSeek(t, dir, minEntries) })
	}
}

// dirSeek is the part of posixtest.DirSeek after it made its files.
func dirSeek(t *testing.T, dir string, minEntries int) {
	fd, err := syscall.Open(dir, syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fd)
	var all []fuse.DirEntry
	buf := make([]byte, 4096)
	for {
		n, err := unix.ReadDirent(fd, buf)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		for todo := buf[:n]; len(todo) > 0; {
			var de fuse.DirEntry
			todo = todo[de.Parse(todo):]
			all = append(all, de)
		}
	}
	if len(all) < minEntries {
		t.Fatalf("%s lists %d entries, want at least %d", dir, len(all), minEntries)
	}
	for i := len(all) - 1; i >= 0; i-- {
		var seekTo int64
		if i > 0 {
			seekTo = int64(all[i-1].Off)
		}
		if _, err := unix.Seek(fd, seekTo, os.SEEK_SET); err != nil {
			t.Fatal(err)
		}
		n, err := unix.ReadDirent(fd, buf)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			t.Errorf("getdents returned 0 on entry %d", i)
			continue
		}
		var de fuse.DirEntry
		de.Parse(buf)
		if !reflect.DeepEqual(de, all[i]) {
			t.Errorf("entry %d: got %v, want %v", i, de, all[i])
		}
	}
}

// TestPosixXAttr is posixtest.XAttr's sequence on each kind of node that
// carries labels: absent is ENODATA, set, listed, size probe, get, remove,
// absent again.
func TestPosixXAttr(t *testing.T) {
	t.Parallel()
	d := startNsfs(t)
	img := newImage(9300, "amd64", 100)
	d.putImage(t, "default", "app", img)
	for name, p := range map[string]string{
		"namespace": d.path("ns/default"),
		"image":     d.path(imagePath("default", "app")),
		"blob":      d.path(blobPath("default", img.config.hex())),
	} {
		t.Run(name, func(t *testing.T) { xattrSequence(t, p) })
	}
}

// xattrSequence is the part of posixtest.XAttr after it made its file.
func xattrSequence(t *testing.T, fn string) {
	const attr = "user.xattrtest"
	buf := make([]byte, 1024)
	if n, err := unix.Getxattr(fn, attr, buf); err == nil {
		t.Errorf("got result %q, want empty", buf[:n])
	} else if err != unix.ENODATA {
		t.Fatalf("got %v want ENOATTR", err)
	}
	value := []byte("value")
	if err := unix.Setxattr(fn, attr, value, 0); err != nil {
		t.Fatalf("Setxattr: %v", err)
	}
	sz, err := unix.Listxattr(fn, nil)
	if err != nil {
		t.Fatalf("Listxattr: %v", err)
	}
	buf = make([]byte, sz)
	if _, err := unix.Listxattr(fn, buf); err != nil {
		t.Fatalf("Listxattr: %v", err)
	}
	if !bytes.Contains(append([]byte{0}, buf...), []byte("\x00"+attr+"\x00")) {
		t.Fatalf("Listxattr: %q (not found: %q)", buf, attr)
	}
	sz, err = unix.Getxattr(fn, attr, nil)
	if err != nil {
		t.Fatalf("Getxattr(nil): %v", err)
	} else if sz != len(value) {
		t.Errorf("Getxattr(nil): got %d want %d", sz, len(value))
	}
	buf = make([]byte, sz)
	if sz, err = unix.Getxattr(fn, attr, buf); err != nil {
		t.Fatalf("Getxattr: %v", err)
	}
	if !bytes.Equal(buf[:sz], value) {
		t.Fatalf("Getxattr got %q want %q", buf[:sz], value)
	}
	if err := unix.Removexattr(fn, attr); err != nil {
		t.Fatalf("Removexattr: %v", err)
	}
	if _, err := unix.Getxattr(fn, attr, buf); err != unix.ENODATA {
		t.Fatalf("got %v want ENOATTR", err)
	}
}
