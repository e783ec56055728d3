package integration

// Focused checks of mechanisms inside fs/ that the user-level suite touches
// only in passing: inode identity across rmdir, the closes that must and
// must not commit a write, and go-fuse's own posixtest checks.

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hanwen/go-fuse/v2/posixtest"
)

// After rmdir returns 0 the kernel marks the directory's inode dead. The
// fixed directories stay, and the next lookup must give them a new inode,
// or listing them fails with ENOENT. The test holds the old directories
// open, so that the kernel cannot forget their inodes in between.
func TestFixedDirectoriesListAfterRmdir(t *testing.T) {
	t.Parallel()
	d := startNsfs(t)
	m := d.mnt
	dirs := []string{"ns/default/images", "ns/default/blobs/sha256", "ns/default/blobs"}
	for i := 0; i < 2; i++ {
		for _, dir := range dirs {
			f, err := os.Open(d.path(dir))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
		}
		mustRun(t, m, "rmdir", dirs...)
		assertOutput(t, "ls ns/default after rmdir of its fixed directories", mustRun(t, m, "ls", "ns/default"), lines("blobs", "images", "index.json", "oci-layout"))
		for _, dir := range dirs {
			want := lines(".", "..")
			if dir == "ns/default/blobs" {
				want = lines(".", "..", "sha256")
			}
			assertOutput(t, "ls -a "+dir+" after its rmdir", mustRun(t, m, "ls", "-a", dir), want)
		}
	}
	dir := imagePath("default", "docker.io/library")
	for i := 0; i < 2; i++ {
		mustRun(t, m, "mkdir", "-p", dir)
		assertOutput(t, "ls of a directory created again", mustRun(t, m, "ls", "-a", dir), lines(".", ".."))
		mustRun(t, m, "rmdir", dir, filepath.Dir(dir))
	}
}

// Namespace and image IDs start at 1, as the root's inode number does: if
// they were used unshifted, find would report a directory loop.
func TestFindWalksTheMountWithoutLoops(t *testing.T) {
	t.Parallel()
	d := startNsfs(t)
	m := d.mnt
	mustRun(t, m, "mkdir", "ns/foo")
	img := newImage(901, "amd64", 1000)
	d.putImage(t, "default", "docker.io/library/app:v1", img)
	mustRun(t, m, "ln", imagePath("default", "docker.io/library/app:v1"), imagePath("default", "app"))
	out := mustRun(t, m, "find", ".", "-printf", "%i %p\n")
	seen := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		ino, path, _ := strings.Cut(line, " ")
		if other, ok := seen[ino]; ok {
			t.Errorf("inode %s is both %s and %s", ino, other, path)
		}
		seen[ino] = path
	}
	if len(seen) < 10 {
		t.Errorf("find listed only %d entries:\n%s", len(seen), out)
	}
}

// A shell's `cmd > file` opens the file, duplicates the descriptor and
// closes its own copy before cmd writes: that close must not end the
// write, and cmd's close commits.
func TestShellRedirectionsWriteImagesAndBlobs(t *testing.T) {
	t.Parallel()
	d := startNsfs(t)
	m := d.mnt
	img := newImage(902, "amd64", 3000)
	for _, b := range []blob{img.config, img.layers[0]} {
		src := writeTemp(t, "blob", b.data)
		mustSh(t, m, "cat "+src+" > "+blobPath("default", b.hex()))
	}
	src := writeTemp(t, "manifest.json", img.manifest.data)
	mustSh(t, m, "cat "+src+" > "+imagePath("default", "app"))
	assertOutput(t, "sha256sum of an image written by a redirection",
		mustRun(t, m, "sha256sum", imagePath("default", "app")), img.manifest.hex()+"  "+imagePath("default", "app")+"\n")
	assertOutput(t, "ls blobs/sha256", mustRun(t, m, "ls", "ns/default/blobs/sha256"), lines(img.hexes()...))
}

// A program that runs a command while it writes gives the child copies of
// its descriptors, which exec closes: those closes must not commit half a
// manifest or half a blob.
func TestWritersThatRunCommandsMidWrite(t *testing.T) {
	t.Parallel()
	d := startNsfs(t)
	img := newImage(903, "amd64", 200<<10)
	for _, b := range []blob{img.config, img.layers[0], img.manifest} {
		path := d.path(blobPath("default", b.hex()))
		if b.hex() == img.manifest.hex() {
			path = d.path(imagePath("default", "app"))
		}
		f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
		if err != nil {
			t.Fatalf("create %s: %v", path, err)
		}
		half := len(b.data) / 2
		if _, err := f.Write(b.data[:half]); err != nil {
			t.Fatalf("write: %v", err)
		}
		if out, err := runWithin(t, toolTimeout, "true"); err != nil {
			t.Fatalf("true: %v %s", err, out)
		}
		if _, err := f.Write(b.data[half:]); err != nil {
			t.Fatalf("write after running a command: %v", err)
		}
		if err := f.Close(); err != nil {
			t.Fatalf("close %s: %v", path, err)
		}
	}
	assertOutput(t, "sha256sum of the image", mustRun(t, d.mnt, "sha256sum", imagePath("default", "app")),
		img.manifest.hex()+"  "+imagePath("default", "app")+"\n")
}

// Write, rename, close: the image is created under its new name.
func TestImageRenamedBeforeItsFirstClose(t *testing.T) {
	t.Parallel()
	d := startNsfs(t)
	img := newImage(904, "amd64", 100)
	for _, b := range []blob{img.config, img.layers[0]} {
		d.putBlob(t, "default", b)
	}
	tmp, final := d.path(imagePath("default", ".app.tmp")), d.path(imagePath("default", "app"))
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(img.manifest.data); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, final); err != nil {
		t.Fatalf("rename of an image not committed yet: %v", err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	assertOutput(t, "ls images", mustRun(t, d.mnt, "ls", "ns/default/images"), lines("app"))
}

// A creation that failed leaves no name behind that would make a retry
// fail with EEXIST.
func TestFailedCreationCanBeRetriedAtOnce(t *testing.T) {
	t.Parallel()
	d := startNsfs(t)
	m := d.mnt
	img := newImage(905, "amd64", 100)
	mustFail(t, m, "Invalid argument", "cp", writeTemp(t, "manifest.json", []byte(`{"schemaVersion":2}`)), imagePath("default", "app"))
	for _, b := range []blob{img.config, img.layers[0]} {
		d.putBlob(t, "default", b)
	}
	mustRun(t, m, "cp", writeTemp(t, "manifest.json", img.manifest.data), imagePath("default", "app"))

	b := blob{data: randomBytes(906, 5000)}
	mustFail(t, m, "Bad message", "cp", writeTemp(t, "wrong", []byte("wrong")), blobPath("default", b.hex()))
	mustRun(t, m, "cp", writeTemp(t, "blob", b.data), blobPath("default", b.hex()))
}

// go-fuse's own POSIX checks, where nsfs can pass them: directories of
// images/.
func TestPosixChecksInImages(t *testing.T) {
	t.Parallel()
	d := startNsfs(t)
	for _, name := range []string{"MkdirRmdir", "ReadDirConsistency"} {
		t.Run(name, func(t *testing.T) {
			dir := d.path(imagePath("default", "posix-"+name))
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			withoutForks(func() { posixtest.All[name](t, dir) })
		})
	}
}
