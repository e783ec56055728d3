package integration

import (
	"os"
	"strings"
	"testing"
)

// TestEverySuccessSurvivesKill9 performs every kind of operation, kills the
// daemon with SIGKILL right after the last one returned, mounts the same
// root again and expects to find everything as it was.
func TestEverySuccessSurvivesKill9(t *testing.T) {
	t.Parallel()
	d := startNsfs(t)
	m := d.mnt
	img1 := newImage(91, "amd64", 2000, 70000)
	img2 := newImage(92, "arm64", 3000)
	img3 := newDockerImage(93, "amd64", 100)

	mustRun(t, m, "mkdir", "ns/foo", "ns/bar", "ns/gone")
	mustRun(t, m, "setfattr", "-n", "user.team", "-v", "a", "ns/foo")
	mustRun(t, m, "setfattr", "-n", "user.removed", "-v", "x", "ns/foo")
	mustRun(t, m, "setfattr", "-x", "user.removed", "ns/foo")
	mustRun(t, m, "setfattr", "-n", "user.emptied", "-v", "x", "ns/bar")
	mustRun(t, m, "setfattr", "-n", "user.emptied", "-v", "", "ns/bar")
	d.putImage(t, "foo", "docker.io/library/app:v1", img1)
	d.putImage(t, "foo", "quay.io/x/y:z", img2)
	d.putImage(t, "default", "docker:v1", img3)
	d.putManifest(t, "bar", "multi:v1", newIndex(img1, img2).data)
	mustRun(t, m, "setfattr", "-n", "user.note", "-v", "img", imagePath("foo", "docker.io/library/app:v1"))
	mustRun(t, m, "setfattr", "-n", "user.note", "-v", "blob", blobPath("foo", img1.config.hex()))
	mustRun(t, m, "ln", imagePath("foo", "docker.io/library/app:v1"), imagePath("foo", "docker.io/library/app:latest"))
	mustRun(t, m, "mv", imagePath("foo", "quay.io/x/y:z"), imagePath("foo", "docker.io/library/moved:1"))
	mustRun(t, m, "cp", imagePath("foo", "docker.io/library/moved:1"), imagePath("default", "copied:1"))
	mustRun(t, m, "cp", writeTemp(t, "m", img2.manifest.data), imagePath("default", "docker:v1")) // replace
	loose := blob{data: randomBytes(94, 999)}
	dropped := blob{data: randomBytes(95, 888)}
	d.putBlob(t, "bar", loose)
	d.putBlob(t, "bar", dropped)
	mustRun(t, m, "rm", blobPath("bar", dropped.hex()))
	mustRun(t, m, "mkdir", "-p", "ns/bar/images/explicit/prefix", "ns/bar/images/removed/prefix")
	mustRun(t, m, "rmdir", "ns/bar/images/removed/prefix", "ns/bar/images/removed")
	mustRun(t, m, "rm", imagePath("foo", "docker.io/library/app:latest"))
	mustRun(t, m, "rmdir", "ns/gone")

	before := d.state(t)
	inodes := map[string]string{}
	for _, p := range []string{"ns/foo", "ns/bar", imagePath("foo", "docker.io/library/app:v1"), imagePath("foo", "docker.io/library/moved:1")} {
		inodes[p] = d.inode(t, p)
	}
	for _, want := range []string{"ns/foo", "docker.io/library/moved:1", "copied:1", "explicit/prefix", loose.hex(), `user.team="a"`, `user.note="img"`, `user.note="blob"`} {
		if !strings.Contains(before, want) {
			t.Fatalf("the store before the kill lacks %s:\n%s", want, before)
		}
	}

	d.kill9(t)
	d2 := d.restart(t)
	d2.assertUnchanged(t, "kill -9 and a fresh mount", before)
	for p, ino := range inodes {
		if got := d2.inode(t, p); got != ino {
			t.Errorf("inode of %s was %s before the kill, %s after", p, ino, got)
		}
	}
	mustFail(t, d2.mnt, "No such file or directory", "stat", "ns/gone")
	mustFail(t, d2.mnt, "No such file or directory", "stat", blobPath("bar", dropped.hex()))
	if _, err := os.Stat(d2.path("ns/bar/images/removed")); err == nil {
		t.Errorf("a removed prefix directory came back")
	}
	// The store works on: the rule checks see the recovered records.
	mustFail(t, d2.mnt, "Device or resource busy", "rm", blobPath("foo", img1.config.hex()))
	mustFail(t, d2.mnt, "Directory not empty", "rmdir", "ns/foo")
	mustRun(t, d2.mnt, "rm", "-rf", "ns/foo", "ns/bar")
}

// TestUnfinishedWritesLeaveNothingAfterKill9: a blob and an image still
// being written when the daemon dies are not there after a fresh mount, and
// can be written again.
func TestUnfinishedWritesLeaveNothingAfterKill9(t *testing.T) {
	t.Parallel()
	d := startNsfs(t)
	img := newImage(96, "amd64", 256<<10)
	d.putBlob(t, "default", img.config)
	before := d.state(t)

	layer, err := os.OpenFile(d.path(blobPath("default", img.layers[0].hex())), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o444)
	if err != nil {
		t.Fatal(err)
	}
	defer layer.Close()
	if _, err := layer.Write(img.layers[0].data[:100<<10]); err != nil {
		t.Fatal(err)
	}
	manifest, err := os.OpenFile(d.path(imagePath("default", "app:v1")), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer manifest.Close()
	if _, err := manifest.Write(img.manifest.data[:len(img.manifest.data)/2]); err != nil {
		t.Fatal(err)
	}

	d.kill9(t)
	// The files are still open on the dead mount: the new daemon must
	// recover a busy mountpoint.
	d2 := d.restart(t)
	m := d2.mnt
	mustFail(t, m, "No such file or directory", "stat", blobPath("default", img.layers[0].hex()))
	mustFail(t, m, "No such file or directory", "stat", imagePath("default", "app:v1"))
	assertOutput(t, "ls ns/default/images", mustRun(t, m, "ls", "ns/default/images"), "")
	assertOutput(t, "ls ns/default/blobs/sha256", mustRun(t, m, "ls", "ns/default/blobs/sha256"), lines(img.config.hex()))
	if _, ok := rootBlobFiles(t, d2.root)[img.layers[0].hex()]; ok {
		t.Errorf("the half-written layer is in ROOT/blobs/sha256")
	}
	// The new daemon removed the dead ingests before mounting (it holds
	// the store's lock, so no writer is left); the store is as it was.
	d2.waitForLog(t, "1 unfinished ingests")
	if got := d2.state(t); got != before {
		t.Errorf("unfinished writes changed the store:\n%s", lineDiff(before, got))
	}

	d2.putImage(t, "default", "app:v1", img)
	assertOutput(t, "sha256sum of the image written again", mustRun(t, m, "sha256sum", imagePath("default", "app:v1")),
		img.manifest.hex()+"  "+imagePath("default", "app:v1")+"\n")
}

// TestMountRemovesBlobFilesACrashLeft: a crash between publishing a blob
// file and committing its record leaves a file no namespace holds, and the
// intent its writer recorded first. The next mount removes the file before
// serving, and says so. A file without that record is someone's data: the
// mount refuses the store instead, and deletes nothing.
func TestMountRemovesBlobFilesACrashLeft(t *testing.T) {
	t.Parallel()
	d := startNsfs(t)
	kept := blob{data: randomBytes(97, 300)}
	d.putBlob(t, "default", kept)
	d.stop(t)

	orphan := blob{data: randomBytes(98, 400)}
	orphanPath := d.root + "/blobs/sha256/" + orphan.hex()
	if err := os.WriteFile(orphanPath, orphan.data, 0o444); err != nil {
		t.Fatal(err)
	}
	mountMustFail(t, d.root, d.mnt, "blob file blobs/sha256/"+orphan.hex()+": no record names it")
	if _, err := os.Stat(orphanPath); err != nil {
		t.Fatalf("the refused mount touched the unrecorded file: %v", err)
	}

	recordIntent(t, d.root, string(orphan.digest()))
	d2 := startNsfs(t, withStore(d.root, d.mnt))
	d2.waitForLog(t, "1 blob files no namespace holds")
	if _, err := os.Stat(orphanPath); !os.IsNotExist(err) {
		t.Errorf("the crash's blob file is still in ROOT/blobs/sha256: %v", err)
	}
	files := rootBlobFiles(t, d2.root)
	if _, ok := files[kept.hex()]; !ok || len(files) != 1 {
		t.Errorf("ROOT/blobs/sha256 holds %v, want only the recorded %s", files, kept.hex())
	}
	assertOutput(t, "ls ns/default/blobs/sha256", mustRun(t, d2.mnt, "ls", "ns/default/blobs/sha256"), lines(kept.hex()))
}
