package integration

import (
	"maps"
	"testing"
)

// TestSeedStory tells containerd's namespace story with files: a labelled
// namespace, an image pulled into default, copied into foo without moving
// blob bytes, removed from foo, foo deleted, default refused while full.
func TestSeedStory(t *testing.T) {
	t.Parallel()
	d := startNsfs(t)
	m := d.mnt

	mustRun(t, m, "mkdir", "ns/foo")
	assertOutput(t, "ls ns", mustRun(t, m, "ls", "ns"), lines("default", "foo"))

	mustRun(t, m, "setfattr", "-n", "user.mylabel", "-v", "bar", "ns/foo")
	assertOutput(t, "getfattr -n user.mylabel ns/foo",
		mustRun(t, m, "getfattr", "-n", "user.mylabel", "ns/foo"),
		"# file: ns/foo\nuser.mylabel=\"bar\"\n\n")
	assertOutput(t, "getfattr -d ns/foo",
		mustRun(t, m, "getfattr", "-d", "ns/foo"),
		"# file: ns/foo\nuser.mylabel=\"bar\"\n\n")

	// Pull by hand into default: config and layers, then the manifest.
	img := newImage(1, "amd64", 4<<10, 64<<10, 2<<20)
	const ref = "docker.io/library/app:v1"
	d.putImage(t, "default", ref, img)
	assertOutput(t, "sha256sum of the image in default",
		mustRun(t, m, "sha256sum", imagePath("default", ref)),
		img.manifest.hex()+"  "+imagePath("default", ref)+"\n")
	assertOutput(t, "ls ns/default/blobs/sha256",
		mustRun(t, m, "ls", "ns/default/blobs/sha256"), lines(img.hexes()...))

	// The same image into foo: no blob bytes are written again.
	onDisk := rootBlobFiles(t, d.root)
	if len(onDisk) != len(img.blobs()) {
		t.Fatalf("ROOT/blobs/sha256 holds %v, want the %d blobs of the image", sortedKeys(onDisk), len(img.blobs()))
	}
	written := d.wchar(t)
	mustRun(t, m, "mkdir", "-p", "ns/foo/images/docker.io/library")
	mustRun(t, m, "cp", imagePath("default", ref), imagePath("foo", ref))
	if delta := d.wchar(t) - written; delta >= 1<<20 {
		t.Errorf("the daemon wrote %d bytes while the image (with a 2 MiB layer) was copied into foo; blob bytes must not be written again", delta)
	}
	if after := rootBlobFiles(t, d.root); !maps.Equal(onDisk, after) {
		t.Errorf("cp into foo changed ROOT/blobs/sha256:\nbefore %v\nafter  %v", onDisk, after)
	}
	if ingests := ingestFiles(t, d.root); len(ingests) != 0 {
		t.Errorf("ROOT/ingest holds %v after the copy", ingests)
	}
	assertOutput(t, "ls ns/foo/blobs/sha256 (claimed by the image)",
		mustRun(t, m, "ls", "ns/foo/blobs/sha256"), lines(img.hexes()...))
	assertOutput(t, "sha256sum of the image in foo",
		mustRun(t, m, "sha256sum", imagePath("foo", ref)),
		img.manifest.hex()+"  "+imagePath("foo", ref)+"\n")
	assertOutput(t, "find ns/foo/images -type f",
		mustRun(t, m, "find", "ns/foo/images", "-type", "f"), lines(imagePath("foo", ref)))

	// rm it from foo: foo drops the blobs only that image held, at once.
	mustRun(t, m, "rm", imagePath("foo", ref))
	assertOutput(t, "ls ns/foo/blobs/sha256 after rm", mustRun(t, m, "ls", "ns/foo/blobs/sha256"), "")
	if after := rootBlobFiles(t, d.root); !maps.Equal(onDisk, after) {
		t.Errorf("rm in foo changed ROOT/blobs/sha256 although default still holds the blobs:\nbefore %v\nafter  %v", onDisk, after)
	}
	mustRun(t, m, "rmdir", "ns/foo")
	assertOutput(t, "ls ns after rmdir ns/foo", mustRun(t, m, "ls", "ns"), lines("default"))

	// default still has the image and its blobs.
	before := d.state(t)
	mustFail(t, m, "Directory not empty", "rmdir", "ns/default")
	d.waitForLog(t, `namespace "default" must be empty, but it still has images, blobs`)
	d.assertUnchanged(t, "rmdir ns/default", before)
	assertOutput(t, "cat of the image after the refusal",
		mustRun(t, m, "sha256sum", imagePath("default", ref)),
		img.manifest.hex()+"  "+imagePath("default", ref)+"\n")
}
