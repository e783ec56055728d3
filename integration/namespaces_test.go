package integration

import (
	"os"
	"strings"
	"testing"
)

func TestFreshStoreHasDefaultNamespace(t *testing.T) {
	t.Parallel()
	d := startNsfs(t)
	m := d.mnt
	assertOutput(t, "ls (the mount root)", mustRun(t, m, "ls"), lines("ns"))
	assertOutput(t, "ls ns", mustRun(t, m, "ls", "ns"), lines("default"))
	// A namespace lists images before blobs, so `rm -rf` drops images
	// first; rootfs/ is not listed (TestRootfsReadOnly).
	assertOutput(t, "ls -U ns/default (directory order)", mustRun(t, m, "ls", "-U", "ns/default"), lines("images", "blobs", "oci-layout", "index.json"))
	assertOutput(t, "ls ns/default/blobs", mustRun(t, m, "ls", "ns/default/blobs"), lines("sha256"))
	assertOutput(t, "ls ns/default/images", mustRun(t, m, "ls", "ns/default/images"), "")
	assertOutput(t, "ls ns/default/blobs/sha256", mustRun(t, m, "ls", "ns/default/blobs/sha256"), "")
	assertOutput(t, "find ns -type d", mustRun(t, m, "find", "ns", "-type", "d"),
		lines("ns", "ns/default", "ns/default/images", "ns/default/blobs", "ns/default/blobs/sha256"))
	assertOutput(t, "stat -c %F ns/default", mustRun(t, m, "stat", "-c", "%F", "ns/default"), "directory\n")
}

func TestNamespaceNames(t *testing.T) {
	t.Parallel()
	d := startNsfs(t)
	m := d.mnt
	name76 := strings.Repeat("a", 76)
	valid := []string{
		"foo", "a", "A", "0", "Foo", "FOO", "foo.bar", "foo-bar", "foo_bar",
		"a1.b2-c3_d4", "1.2.3", "x-y-z", name76,
	}
	for _, name := range valid {
		mustRun(t, m, "mkdir", "ns/"+name)
		assertOutput(t, "stat -c %n of ns/"+name, mustRun(t, m, "stat", "-c", "%n", "ns/"+name), "ns/"+name+"\n")
	}
	assertOutput(t, "ls ns", mustRun(t, m, "ls", "ns"),
		lines(sortStrings(append([]string{"default"}, valid...))...))

	invalid := []struct{ name, msg string }{
		{"-foo", "Invalid argument"},
		{"foo-", "Invalid argument"},
		{".foo", "Invalid argument"},
		{"foo.", "Invalid argument"},
		{"_foo", "Invalid argument"},
		{"foo..bar", "Invalid argument"},
		{"foo.-bar", "Invalid argument"},
		{"foo__bar", "Invalid argument"},
		{"foo bar", "Invalid argument"},
		{"foo@bar", "Invalid argument"},
		{"foo:bar", "Invalid argument"},
		{"foo+bar", "Invalid argument"},
		{"fóo", "Invalid argument"},
		{"...", "Invalid argument"},
		{strings.Repeat("a", 77), "Invalid argument"},
		{strings.Repeat("a", 255), "Invalid argument"},
		{strings.Repeat("a", 256), "File name too long"},
	}
	for _, c := range invalid {
		before := d.state(t)
		mustFail(t, m, c.msg, "mkdir", "ns/"+c.name)
		d.assertUnchanged(t, "mkdir ns/"+c.name, before)
	}
	// The 256-byte name is refused at lookup as well, not just at mkdir.
	mustFail(t, m, "File name too long", "stat", "ns/"+strings.Repeat("a", 256))
}

func TestNamespacesAreCaseSensitive(t *testing.T) {
	t.Parallel()
	d := startNsfs(t)
	m := d.mnt
	mustRun(t, m, "mkdir", "ns/Foo")
	mustRun(t, m, "mkdir", "ns/foo")
	assertOutput(t, "ls ns", mustRun(t, m, "ls", "ns"), lines("Foo", "default", "foo"))
	if a, b := d.inode(t, "ns/Foo"), d.inode(t, "ns/foo"); a == b {
		t.Errorf("ns/Foo and ns/foo share inode %s", a)
	}
	mustRun(t, m, "setfattr", "-n", "user.case", "-v", "upper", "ns/Foo")
	mustFail(t, m, "No such attribute", "getfattr", "-n", "user.case", "ns/foo")
	mustFail(t, m, "No such file or directory", "stat", "ns/FOO")
	mustRun(t, m, "rmdir", "ns/Foo")
	assertOutput(t, "ls ns after rmdir ns/Foo", mustRun(t, m, "ls", "ns"), lines("default", "foo"))
}

func TestMkdirRmdirNamespace(t *testing.T) {
	t.Parallel()
	d := startNsfs(t)
	m := d.mnt

	before := d.state(t)
	mustFail(t, m, "File exists", "mkdir", "ns/default")
	d.assertUnchanged(t, "mkdir ns/default", before)

	mustRun(t, m, "mkdir", "ns/foo")
	before = d.state(t)
	mustFail(t, m, "File exists", "mkdir", "ns/foo")
	d.assertUnchanged(t, "second mkdir ns/foo", before)
	assertOutput(t, "ls -U ns/foo", mustRun(t, m, "ls", "-U", "ns/foo"), lines("images", "blobs", "oci-layout", "index.json"))

	mustRun(t, m, "rmdir", "ns/foo")
	assertOutput(t, "ls ns", mustRun(t, m, "ls", "ns"), lines("default"))
	mustFail(t, m, "No such file or directory", "stat", "ns/foo")
	mustFail(t, m, "No such file or directory", "rmdir", "ns/foo")
	mustFail(t, m, "No such file or directory", "rmdir", "ns/never")

	// The name can be used again, for a new, empty namespace.
	mustRun(t, m, "mkdir", "ns/foo")
	mustFail(t, m, "No such attribute", "getfattr", "-n", "user.x", "ns/foo")

	// Only namespaces live in ns/. (docs/design.md: EPERM, as in a
	// directory the user may not change.) A namespace's root also takes
	// the temporary files and scratch directories of the tools that write
	// OCI layouts (layout_test.go).
	before = d.state(t)
	mustFail(t, m, "Operation not permitted", "touch", "ns/afile")
	mustFail(t, m, "Operation not permitted", "mkdir", "ns/foo/blobs/sha512")
	mustFail(t, m, "Operation not permitted", "touch", "ns/foo/blobs/afile")
	mustFail(t, m, "Operation not permitted", "ln", "-s", "default", "ns/link")
	mustFail(t, m, "Operation not permitted", "ln", "-s", "x", "ns/foo/images/link")
	mustFail(t, m, "Operation not permitted", "mknod", "ns/foo/images/fifo", "p")
	d.assertUnchanged(t, "creating anything but namespaces, refs and blobs", before)
}

func TestRmdirNamespaceRefusedWhileItHoldsBlobs(t *testing.T) {
	t.Parallel()
	d := startNsfs(t)
	m := d.mnt
	mustRun(t, m, "mkdir", "ns/foo")
	b := blob{data: randomBytes(11, 3000)}
	d.putBlob(t, "foo", b)

	before := d.state(t)
	mustFail(t, m, "Directory not empty", "rmdir", "ns/foo")
	d.waitForLog(t, `namespace "foo" must be empty, but it still has blobs`)
	d.assertUnchanged(t, "rmdir ns/foo holding a blob", before)

	// The fixed directories refuse too, and stay.
	mustFail(t, m, "Directory not empty", "rmdir", "ns/foo/blobs/sha256")
	mustFail(t, m, "Directory not empty", "rmdir", "ns/foo/blobs")
	d.assertUnchanged(t, "rmdir of the fixed directories", before)

	mustRun(t, m, "rm", blobPath("foo", b.hex()))
	mustRun(t, m, "rmdir", "ns/foo")
	assertOutput(t, "ls ns", mustRun(t, m, "ls", "ns"), lines("default"))
	if files := rootBlobFiles(t, d.root); len(files) != 0 {
		t.Errorf("ROOT/blobs/sha256 still holds %v after the only holder dropped it", sortedKeys(files))
	}
}

func TestRmdirOfFixedDirectoriesSucceedsWhenEmptyAndTheyStay(t *testing.T) {
	t.Parallel()
	d := startNsfs(t)
	m := d.mnt
	mustRun(t, m, "mkdir", "ns/foo")
	for _, dir := range []string{"ns/foo/images", "ns/foo/blobs/sha256", "ns/foo/blobs"} {
		mustRun(t, m, "rmdir", dir)
		assertOutput(t, "stat -c %F "+dir+" after rmdir", mustRun(t, m, "stat", "-c", "%F", dir), "directory\n")
	}
	assertOutput(t, "ls -U ns/foo", mustRun(t, m, "ls", "-U", "ns/foo"), lines("images", "blobs", "oci-layout", "index.json"))

	// images/ holding a prefix directory is not empty; the namespace is
	// (empty ref-prefix directories go with it).
	mustRun(t, m, "mkdir", "-p", "ns/foo/images/docker.io/library")
	mustFail(t, m, "Directory not empty", "rmdir", "ns/foo/images")
	mustFail(t, m, "Directory not empty", "rmdir", "ns/foo/images/docker.io")
	mustRun(t, m, "rmdir", "ns/foo/images/docker.io/library")
	mustRun(t, m, "mkdir", "-p", "ns/foo/images/docker.io/library")
	mustRun(t, m, "rmdir", "ns/foo")
	mustFail(t, m, "No such file or directory", "stat", "ns/foo")
	// A new foo does not inherit the old prefixes.
	mustRun(t, m, "mkdir", "ns/foo")
	assertOutput(t, "ls ns/foo/images of the new foo", mustRun(t, m, "ls", "ns/foo/images"), "")
}

func TestRmRfNamespace(t *testing.T) {
	t.Parallel()
	d := startNsfs(t)
	m := d.mnt
	mustRun(t, m, "mkdir", "ns/foo")
	mustRun(t, m, "setfattr", "-n", "user.team", "-v", "a", "ns/foo")
	img := newImage(21, "amd64", 1000, 2000)
	d.putImage(t, "foo", "docker.io/library/app:v1", img)
	d.putManifest(t, "foo", "docker.io/library/app:v2", img.manifest.data)
	other := newImage(22, "arm64", 500)
	d.putImage(t, "foo", "quay.io/x/y:z", other)
	loose := blob{data: randomBytes(23, 777)}
	d.putBlob(t, "foo", loose)
	mustRun(t, m, "mkdir", "-p", "ns/foo/images/empty/prefix")
	// default shares one image with foo, so its blob files must stay.
	d.putImage(t, "default", "shared:1", other)

	mustRun(t, m, "rm", "-rf", "ns/foo")
	mustFail(t, m, "No such file or directory", "stat", "ns/foo")
	assertOutput(t, "ls ns", mustRun(t, m, "ls", "ns"), lines("default"))
	files := rootBlobFiles(t, d.root)
	if got, want := sortedKeys(files), other.hexes(); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("ROOT/blobs/sha256 after rm -rf ns/foo:\n got %v\nwant %v (only default's image)", got, want)
	}
	if ingests := ingestFiles(t, d.root); len(ingests) != 0 {
		t.Errorf("ROOT/ingest holds %v", ingests)
	}
	// The name is free again, and the new foo is empty and unlabelled.
	mustRun(t, m, "mkdir", "ns/foo")
	assertOutput(t, "getfattr -d ns/foo", mustRun(t, m, "getfattr", "-d", "ns/foo"), "")
	assertOutput(t, "find ns/foo", mustRun(t, m, "find", "ns/foo"),
		lines("ns/foo", "ns/foo/images", "ns/foo/blobs", "ns/foo/blobs/sha256", "ns/foo/oci-layout", "ns/foo/index.json"))
}

func TestNamesOver255BytesAreTooLongEverywhere(t *testing.T) {
	t.Parallel()
	d := startNsfs(t)
	m := d.mnt
	long := strings.Repeat("x", 256)
	src := writeTemp(t, "data", []byte("x"))
	before := d.state(t)
	mustFail(t, m, "File name too long", "mkdir", "ns/"+long)
	mustFail(t, m, "File name too long", "mkdir", "ns/default/images/"+long)
	mustFail(t, m, "File name too long", "cp", src, "ns/default/images/"+long)
	mustFail(t, m, "File name too long", "cp", src, "ns/default/blobs/sha256/"+long)
	mustFail(t, m, "File name too long", "stat", "ns/default/images/"+long)
	mustFail(t, m, "File name too long", "stat", "ns/default/blobs/sha256/"+long)
	mustFail(t, m, "File name too long", "stat", "ns/default/"+long)
	mustFail(t, m, "File name too long", "stat", long)
	d.assertUnchanged(t, "names over 255 bytes", before)
	// mkdir -p makes the prefixes it can and refuses the long one.
	mustFail(t, m, "File name too long", "mkdir", "-p", "ns/default/images/a/"+long)
	assertOutput(t, "find ns/default/images", mustRun(t, m, "find", "ns/default/images"),
		lines("ns/default/images", "ns/default/images/a"))
}

// TestInodesAreStable: the same node keeps its inode number across
// lookups, kernel cache eviction and listings, and listings agree with stat.
func TestInodesAreStable(t *testing.T) {
	t.Parallel()
	d := startNsfs(t)
	m := d.mnt
	mustRun(t, m, "mkdir", "ns/foo")
	img := newImage(101, "amd64", 100)
	d.putImage(t, "foo", "docker.io/library/app:v1", img)
	nodes := []string{
		".", "ns", "ns/default", "ns/foo", "ns/foo/images", "ns/foo/blobs", "ns/foo/blobs/sha256",
		"ns/foo/images/docker.io", "ns/foo/images/docker.io/library",
		imagePath("foo", "docker.io/library/app:v1"), blobPath("foo", img.config.hex()),
	}
	first := map[string]string{}
	seen := map[string]string{}
	for _, p := range nodes {
		ino := d.inode(t, p)
		first[p] = ino
		if other, dup := seen[ino]; dup {
			t.Errorf("%s and %s share inode %s", p, other, ino)
		}
		seen[ino] = p
	}
	if first["."] == "0" {
		t.Errorf("the mount root reports inode 0")
	}
	check := func(when string) {
		t.Helper()
		for _, p := range nodes {
			if got := d.inode(t, p); got != first[p] {
				t.Errorf("inode of %s %s = %s, first %s", p, when, got, first[p])
			}
		}
	}
	check("on a second lookup")
	// Make the kernel forget its inodes (FORGET), then look up afresh.
	if err := os.WriteFile("/proc/sys/vm/drop_caches", []byte("2"), 0); err != nil {
		t.Logf("cannot drop the kernel's caches here (%v); checking cached lookups only", err)
	}
	check("after the kernel dropped its caches")

	// ls -i lists the numbers stat reports.
	for _, dir := range []string{"ns", "ns/foo", "ns/foo/images/docker.io/library", "ns/foo/blobs/sha256"} {
		for _, line := range strings.Split(strings.TrimSpace(mustRun(t, m, "ls", "-i", dir)), "\n") {
			f := strings.Fields(line)
			if len(f) != 2 {
				t.Errorf("ls -i %s printed %q", dir, line)
				continue
			}
			if want := d.inode(t, dir+"/"+f[1]); f[0] != want {
				t.Errorf("ls -i %s lists %s with inode %s, stat says %s", dir, f[1], f[0], want)
			}
		}
	}
	// find -inum finds the image by the number stat gave.
	assertOutput(t, "find -inum", mustRun(t, m, "find", "ns/foo/images", "-inum", first[imagePath("foo", "docker.io/library/app:v1")]),
		lines(imagePath("foo", "docker.io/library/app:v1")))
}
