package integration

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// smallTmpfs mounts a tmpfs of sizeMiB at a new directory, unmounted at
// cleanup (after the daemons that use it, which were started later).
func smallTmpfs(t *testing.T, sizeMiB int) string {
	t.Helper()
	requireMount(t)
	dir := t.TempDir()
	suiteReaper.mount(dir)
	if out, err := runWithin(t, toolTimeout, "mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%dm,mode=0755", sizeMiB), "tmpfs", dir); err != nil {
		t.Skipf("mount tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := runWithin(t, toolTimeout, "umount", dir); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

// available is statfs's f_bavail in bytes: what df shows as available.
func available(t *testing.T, path string) int64 {
	t.Helper()
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		t.Fatalf("statfs %s: %v", path, err)
	}
	return int64(st.Bavail) * st.Bsize
}

// fillUp appends zeros to path (on the filesystem to fill, outside the
// store) until the filesystem is full: dd, then dd again with smaller
// blocks for the rest.
func fillUp(t *testing.T, path string) {
	t.Helper()
	for _, bs := range []string{"1M", "4k"} {
		r := run(t, "/", "dd", "if=/dev/zero", "of="+path, "bs="+bs, "oflag=append", "conv=notrunc")
		if r.code == 0 || !strings.Contains(r.stderr, "No space left on device") {
			t.Fatalf("dd until the disk is full: %s", r)
		}
	}
	if free := available(t, filepath.Dir(path)); free != 0 {
		t.Fatalf("%d bytes still free after filling %s", free, path)
	}
}

// mkdirUntilFull makes namespaces through the mount until mkdir fails,
// which must be with ENOSPC and show nothing: then meta.db has no free
// page left either, and a delete's commit must grow it.
func mkdirUntilFull(t *testing.T, d *daemon) {
	t.Helper()
	for i := 0; ; i++ {
		if i == 20000 {
			t.Fatal("20000 namespaces made on a full disk")
		}
		name := fmt.Sprintf("fill-%d", i)
		err := unix.Mkdir(d.path("ns", name), 0o755)
		if err == nil {
			continue
		}
		assertErrno(t, "mkdir of a namespace on a full disk", err, syscall.ENOSPC)
		if _, err := os.Stat(d.path("ns", name)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("ns/%s after its mkdir failed: stat says %v, want ENOENT", name, err)
		}
		t.Logf("mkdir failed with ENOSPC after %d namespaces", i)
		return
	}
}

// writeFile writes data to rel through the mount with open, write and
// close, and returns the first error.
func writeFile(d *daemon, rel string, data []byte) error {
	fd, err := unix.Open(d.path(rel), unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0o644)
	if err != nil {
		return fmt.Errorf("open: %w", err)
	}
	_, werr := unix.Write(fd, data)
	cerr := unix.Close(fd)
	if werr != nil {
		return fmt.Errorf("write: %w", werr)
	}
	if cerr != nil {
		return fmt.Errorf("close: %w", cerr)
	}
	return nil
}

// noBadErrno fails when a tool's message shows EBADMSG or EIO.
func noBadErrno(t *testing.T, r result) {
	t.Helper()
	for _, bad := range []string{"Bad message", "Input/output error"} {
		if strings.Contains(r.stderr, bad) {
			t.Errorf("%s: says %q on a full disk, want only ENOSPC", r.cmdline, bad)
		}
	}
}

// With the store's filesystem full: writes fail with ENOSPC and leave
// nothing; rm of an image, rm -rf of a namespace and nsfs gc succeed and
// free space; the daemon killed with -9 mounts again; once the filler is
// gone, writes work again.
func TestFullDisk(t *testing.T) {
	disk := smallTmpfs(t, 48)
	root := filepath.Join(disk, "store")
	filler := filepath.Join(disk, "filler")
	mnt := filepath.Join(t.TempDir(), "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	d := startNsfs(t, withStore(root, mnt))
	if fi, err := os.Stat(filepath.Join(root, "reserve")); err != nil || fi.Size() < 8<<20 {
		t.Fatalf("the store keeps no reserve of 8 MiB: %v", err)
	}

	appA := newImage(81, "amd64", 3<<20, 1<<20)
	appB := newImage(82, "amd64", 1<<20)
	appC := newImage(83, "arm64", 2<<20)
	d.putImage(t, "default", "library/app:a", appA)
	d.putImage(t, "default", "library/app:b", appB)
	mustRun(t, d.mnt, "mkdir", "ns/other")
	d.putImage(t, "other", "app:c", appC)

	fillUp(t, filler)
	mkdirUntilFull(t, d)

	// Writes that cannot fit: ENOSPC, and nothing shows.
	before := d.state(t)
	big := blob{data: randomBytes(84, 256<<10)}
	assertErrno(t, "write of a new blob on a full disk", writeFile(d, blobPath("default", big.hex()), big.data), syscall.ENOSPC)
	if _, err := os.Stat(d.path(blobPath("default", big.hex()))); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the blob whose write failed: stat says %v, want ENOENT", err)
	}
	r := mustFail(t, d.mnt, "No space left on device", "cp", writeTemp(t, "big", big.data), blobPath("default", big.hex()))
	noBadErrno(t, r)
	appD := newImage(85, "amd64", 100)
	r = mustFail(t, d.mnt, "No space left on device", "cp", writeTemp(t, "manifest.json", appD.manifest.data), imagePath("default", "app-d"))
	noBadErrno(t, r)
	d.assertUnchanged(t, "writes on a full disk", before)

	// Deletes succeed and free space.
	free := available(t, d.mnt)
	mustRun(t, d.mnt, "rm", imagePath("default", "library/app:a"))
	if got := available(t, d.mnt); got < free+4<<20 {
		t.Errorf("rm of an image with 4 MiB of layers on a full disk: df available %d -> %d", free, got)
	}
	// Its commit took the reserve (meta.db had no free page), which comes
	// back only once twice its size is free.
	if _, err := os.Stat(filepath.Join(root, "reserve")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the reserve after the first rm on a full disk: %v, want it used", err)
	}
	mustRun(t, d.mnt, "rm", "-rf", "ns/other")
	if _, err := os.Stat(d.path("ns", "other")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("ns/other after rm -rf: %v", err)
	}
	for i := 0; ; i++ {
		if err := os.Remove(d.path("ns", fmt.Sprintf("fill-%d", i))); err != nil {
			break
		}
	}
	if got := available(t, d.mnt); got < free+6<<20 {
		t.Errorf("after rm of two images with 6 MiB of layers: df available %d -> %d", free, got)
	}
	// What fits is written again.
	d.putImage(t, "default", "app-d", appD)

	// kill -9, with garbage a crash left (a blob file published by a
	// writer whose commit never happened, with the intent it recorded);
	// full again; nsfs gc removes the garbage on the full disk.
	d.kill9(t)
	garbage := blob{data: randomBytes(86, 2<<20)}
	if err := os.WriteFile(filepath.Join(root, "blobs", "sha256", garbage.hex()), garbage.data, 0o444); err != nil {
		t.Fatal(err)
	}
	recordIntent(t, root, string(garbage.digest()))
	fillUp(t, filler+"2")
	free = available(t, disk)
	out := mustRun(t, "/", nsfsBin, "gc", "--root", root)
	if !strings.Contains(out, "removed blobs/sha256/"+garbage.hex()) {
		t.Errorf("nsfs gc on a full disk did not remove the garbage:\n%s", out)
	}
	if got := available(t, disk); got < free+2<<20 {
		t.Errorf("nsfs gc on a full disk: df available %d -> %d, want 2 MiB more", free, got)
	}
	fillUp(t, filler+"3")

	// The store mounts again on the full disk, and rm works there too.
	d = d.restart(t)
	assertOutput(t, "images after the restart", mustRun(t, d.mnt, "ls", "ns/default/images/library"), lines("app:b"))
	mustRun(t, d.mnt, "rm", imagePath("default", "library/app:b"))

	// Space freed: writes work again, and the reserve is back.
	for _, f := range []string{filler, filler + "2", filler + "3"} {
		if err := os.Remove(f); err != nil {
			t.Fatal(err)
		}
	}
	d.putImage(t, "default", "library/app:a", appA)
	mustRun(t, d.mnt, "mkdir", "ns/again")
	if got := mustRun(t, d.mnt, "cat", imagePath("default", "library/app:a")); got != string(appA.manifest.data) {
		t.Errorf("the image written again reads back %d bytes, want its manifest", len(got))
	}
	d.stop(t)
	if fi, err := os.Stat(filepath.Join(root, "reserve")); err != nil || fi.Size() < 8<<20 {
		t.Errorf("the reserve is not back once space was freed: %v", err)
	}
	out = mustRun(t, "/", nsfsBin, "fsck", "--root", root, "--verify-blobs")
	if !strings.Contains(out, "is clean") {
		t.Errorf("nsfs fsck after the full disk:\n%s", out)
	}
}
