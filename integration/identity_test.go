package integration

// An open descriptor stays with its image: a file created, committed,
// renamed or removed while open keeps one inode, and what it writes later
// goes to the image it names now, or nowhere once the image is gone —
// never back under a name it no longer has.

import (
	"os"
	"strconv"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// createCommitted creates images/<ref> of default with O_CREAT|O_EXCL,
// writes manifest, fsyncs (the first commit) and stats it by path, as a
// tool that checks its work does; the descriptor stays open.
func createCommitted(t *testing.T, d *daemon, ref string, manifest []byte) *os.File {
	t.Helper()
	p := d.path(imagePath("default", ref))
	f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	if _, err := f.Write(manifest); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatalf("fsync of a new image: %v", err)
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("stat of a committed image by path: %v", err)
	}
	return f
}

// rewrite replaces the bytes behind an open descriptor.
func rewrite(t *testing.T, f *os.File, data []byte) {
	t.Helper()
	if err := f.Truncate(0); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(data, 0); err != nil {
		t.Fatal(err)
	}
}

func fdInode(t *testing.T, f *os.File) string {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	return strconv.FormatUint(st.Ino, 10)
}

// open x, write, fsync, stat x, mv x y, write, close: y has the new bytes,
// and x does not come back.
func TestWriteAfterMvOfANewImageGoesToTheNewName(t *testing.T) {
	t.Parallel()
	d := startNsfs(t)
	m := d.mnt
	a, b := newImage(1101, "amd64", 100), newImage(1102, "amd64", 200)
	for _, img := range []testImage{a, b} {
		for _, bl := range []blob{img.config, img.layers[0]} {
			d.putBlob(t, "default", bl)
		}
	}
	f := createCommitted(t, d, "x", a.manifest.data)
	ino := fdInode(t, f)
	if got := d.inode(t, imagePath("default", "x")); got != ino {
		t.Errorf("stat x after its first commit: inode %s, but the open descriptor has %s (one file, one inode)", got, ino)
	}
	mustRun(t, m, "mv", imagePath("default", "x"), imagePath("default", "y"))
	rewrite(t, f, b.manifest.data)
	if err := f.Close(); err != nil {
		t.Fatalf("close after mv: %v", err)
	}
	assertOutput(t, "ls images after write, mv, write, close", mustRun(t, m, "ls", "ns/default/images"), lines("y"))
	y := imagePath("default", "y")
	assertOutput(t, "sha256sum y", mustRun(t, m, "sha256sum", y), b.manifest.hex()+"  "+y+"\n")
	if got := d.inode(t, y); got != ino {
		t.Errorf("inode of y = %s, want %s (the descriptor's image)", got, ino)
	}
}

// open x, write, fsync, stat x, rm x, write, close: close succeeds, and x
// does not come back (its bytes went with it).
func TestWriteAfterRmOfANewImageGoesNowhere(t *testing.T) {
	t.Parallel()
	d := startNsfs(t)
	m := d.mnt
	a, b := newImage(1103, "amd64", 100), newImage(1104, "amd64", 200)
	for _, img := range []testImage{a, b} {
		for _, bl := range []blob{img.config, img.layers[0]} {
			d.putBlob(t, "default", bl)
		}
	}
	f := createCommitted(t, d, "x", a.manifest.data)
	mustRun(t, m, "rm", imagePath("default", "x"))
	if _, err := f.WriteAt(b.manifest.data, 0); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("close of a removed image: %v, want success (its bytes go with it)", err)
	}
	assertOutput(t, "ls images after write, rm, write, close", mustRun(t, m, "ls", "ns/default/images"), "")
	_, err := os.Stat(d.path(imagePath("default", "x")))
	assertErrno(t, "stat x", err, syscall.ENOENT)
}

// A second descriptor of an image that another one renamed: its close
// commits to the new name.
func TestCloseOfASecondDescriptorAfterMv(t *testing.T) {
	t.Parallel()
	d := startNsfs(t)
	m := d.mnt
	a, b := newImage(1105, "amd64", 100), newImage(1106, "amd64", 200)
	for _, img := range []testImage{a, b} {
		for _, bl := range []blob{img.config, img.layers[0]} {
			d.putBlob(t, "default", bl)
		}
	}
	d.putManifest(t, "default", "x", a.manifest.data)
	f, err := os.OpenFile(d.path(imagePath("default", "x")), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rewrite(t, f, b.manifest.data)
	mustRun(t, m, "mv", imagePath("default", "x"), imagePath("default", "y"))
	if err := f.Close(); err != nil {
		t.Fatalf("close after mv: %v", err)
	}
	assertOutput(t, "ls images", mustRun(t, m, "ls", "ns/default/images"), lines("y"))
	y := imagePath("default", "y")
	assertOutput(t, "sha256sum y", mustRun(t, m, "sha256sum", y), b.manifest.hex()+"  "+y+"\n")
}

// Labels set on an image being created are written with it.
func TestLabelsOfANewImageCommitWithIt(t *testing.T) {
	t.Parallel()
	d := startNsfs(t)
	a := newImage(1107, "amd64", 100)
	for _, bl := range []blob{a.config, a.layers[0]} {
		d.putBlob(t, "default", bl)
	}
	p := imagePath("default", "x")
	f, err := os.OpenFile(d.path(p), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	mustRun(t, d.mnt, "setfattr", "-n", "user.team", "-v", "infra", p)
	if _, err := f.Write(a.manifest.data); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	assertOutput(t, "getfattr of the new image", mustRun(t, d.mnt, "getfattr", "--only-values", "-n", "user.team", p), "infra")
}
