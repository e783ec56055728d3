package integration

// The mount used the way people and their tools use a filesystem, beyond
// the operations docs/design.md lists: installers and archivers that set modes
// and owners, writers slower than the kernel's name cache, readers racing
// a replacement, and programs that keep a directory of a deleted
// namespace open.

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// install, tar -x and cp -p set modes and owners as they go (install
// creates 0600 and then chmods; tar restores the archive's owner and mode):
// they must work, and the modes nsfs shows stay its own.
func TestInstallTarAndCpPreserveIntoImages(t *testing.T) {
	t.Parallel()
	d := startNsfs(t)
	m := d.mnt
	img := newImage(1001, "amd64", 100)
	for _, b := range []blob{img.config, img.layers[0]} {
		d.putBlob(t, "default", b)
	}
	src := writeTemp(t, "manifest.json", img.manifest.data)
	want := img.manifest.hex()

	mustRun(t, m, "install", "-m", "644", src, imagePath("default", "installed"))
	mustRun(t, m, "install", "-D", "-m", "600", src, imagePath("default", "docker.io/library/app:v1"))

	// A manifest another user made with umask 002, archived and copied with
	// owner and mode.
	if err := os.Chmod(src, 0o664); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(src, 1000, 1000); err != nil {
		t.Fatal(err)
	}
	mustRun(t, m, "cp", "-p", src, imagePath("default", "preserved"))
	tree := t.TempDir()
	if err := os.MkdirAll(filepath.Join(tree, "lib"), 0o775); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tree, "lib", "app:v2"), img.manifest.data, 0o664); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{tree, filepath.Join(tree, "lib"), filepath.Join(tree, "lib", "app:v2")} {
		if err := os.Chown(p, 1000, 1000); err != nil {
			t.Fatal(err)
		}
	}
	tarball := filepath.Join(t.TempDir(), "manifests.tar")
	mustRun(t, m, "tar", "-C", tree, "-cf", tarball, ".")
	mustRun(t, m, "tar", "-C", "ns/default/images", "-xf", tarball)

	for _, ref := range []string{"installed", "docker.io/library/app:v1", "preserved", "lib/app:v2"} {
		p := imagePath("default", ref)
		assertOutput(t, "sha256sum "+p, mustRun(t, m, "sha256sum", p), want+"  "+p+"\n")
		assertOutput(t, "stat -c '%a %u' "+p, mustRun(t, m, "stat", "-c", "%a %u", p), "644 0\n")
	}
	assertOutput(t, "stat -c '%a %u' of a directory tar made", mustRun(t, m, "stat", "-c", "%a %u", "ns/default/images/lib"), "755 0\n")
	// Inside a namespace, accepted is not stored, on directories and blobs alike.
	mustRun(t, m, "chmod", "700", "ns/default/images/lib")
	mustRun(t, m, "chmod", "644", blobPath("default", img.config.hex()))
	assertOutput(t, "stat -c %a after chmod", mustRun(t, m, "stat", "-c", "%a", "ns/default", "ns/default/images/lib", blobPath("default", img.config.hex())),
		lines("755", "755", "444"))
	// The namespace's own mode is stored, and what is inside follows it.
	mustRun(t, m, "chmod", "700", "ns/default")
	assertOutput(t, "stat -c %a after chmod of the namespace", mustRun(t, m, "stat", "-c", "%a", "ns/default", "ns/default/images/lib", blobPath("default", img.config.hex())),
		lines("700", "700", "400"))
	mustRun(t, m, "chmod", "755", "ns/default")
	// A committed blob stays read-only.
	mustFail(t, m, "Operation not permitted", "sh", "-c", "echo x >> "+blobPath("default", img.config.hex()))
}

// waitOutEntryCache runs check repeatedly until the kernel's entry and
// attribute caches (1 s) have expired at least once, so that check also
// runs against a fresh lookup.
func waitOutEntryCache(t *testing.T, check func() error) {
	t.Helper()
	for deadline := time.Now().Add(1500 * time.Millisecond); ; {
		if err := check(); err != nil {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// An image or a blob being written exists for as long as its writer has it
// open, not only until the kernel looks its name up again: tools stat,
// chmod and setxattr by path while they write.
func TestFilesBeingWrittenKeepTheirNames(t *testing.T) {
	t.Parallel()
	d := startNsfs(t)
	img := newImage(1002, "amd64", 100, 300<<10)
	d.putBlob(t, "default", img.config)

	layer := img.layers[1]
	blobFile := d.path(blobPath("default", layer.hex()))
	bf, err := os.OpenFile(blobFile, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o444)
	if err != nil {
		t.Fatal(err)
	}
	defer bf.Close()
	if _, err := bf.Write(layer.data[:1000]); err != nil {
		t.Fatal(err)
	}
	waitOutEntryCache(t, func() error {
		st, err := os.Stat(blobFile)
		if err != nil {
			return errors.New("stat of a blob being written: " + err.Error())
		}
		if st.Size() != 1000 {
			t.Errorf("stat of a blob being written: size %d, want 1000", st.Size())
		}
		return nil
	})
	if _, err := bf.Write(layer.data[1000:]); err != nil {
		t.Fatal(err)
	}
	if err := bf.Close(); err != nil {
		t.Fatalf("close of a blob written slowly: %v", err)
	}
	d.putBlob(t, "default", img.layers[0])

	ref := imagePath("default", "slow")
	imgFile := d.path(ref)
	f, err := os.OpenFile(imgFile, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	half := len(img.manifest.data) / 2
	if _, err := f.Write(img.manifest.data[:half]); err != nil {
		t.Fatal(err)
	}
	waitOutEntryCache(t, func() error {
		if _, err := os.Stat(imgFile); err != nil {
			return errors.New("stat of an image being written: " + err.Error())
		}
		return nil
	})
	if err := unix.Setxattr(imgFile, "user.team", []byte("infra"), 0); err != nil {
		t.Fatalf("setxattr by path on an image being written: %v", err)
	}
	// Half a manifest is never read: until its first commit the image
	// cannot be opened for reading, as a blob being ingested cannot.
	if data, err := os.ReadFile(imgFile); !errors.Is(err, syscall.ENOENT) {
		t.Errorf("reading an image being created: got %d bytes, err %v; want ENOENT", len(data), err)
	}
	if _, err := f.Write(img.manifest.data[half:]); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("close of an image written slowly: %v", err)
	}
	assertOutput(t, "sha256sum of the image", mustRun(t, d.mnt, "sha256sum", ref), img.manifest.hex()+"  "+ref+"\n")
	assertOutput(t, "getfattr of the image", mustRun(t, d.mnt, "getfattr", "--only-values", "-n", "user.team", ref), "infra")
}

// Readers of an image that is being replaced get one whole manifest, the
// old or the new, never an empty file or a mix of sizes and bytes.
func TestReadingAnImageWhileItIsReplaced(t *testing.T) {
	t.Parallel()
	d := startNsfs(t)
	// Manifests of different sizes, all valid in default.
	imgs := []testImage{newImage(1003, "amd64", 100), newImage(1004, "amd64", 100, 100, 100), newImage(1005, "amd64", 100, 100, 100, 100, 100, 100)}
	valid := map[string]bool{}
	for i, img := range imgs {
		d.putImage(t, "default", "keep"+string(rune('a'+i)), img)
		valid[string(img.manifest.data)] = true
	}
	p := d.path(imagePath("default", "app"))
	if err := os.WriteFile(p, imgs[0].manifest.data, 0o644); err != nil {
		t.Fatal(err)
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 1; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if err := os.WriteFile(p, imgs[i%len(imgs)].manifest.data, 0o644); err != nil {
				t.Errorf("replace: %v", err)
				return
			}
		}
	}()
	bad := map[string]int{}
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); {
		data, err := os.ReadFile(p)
		if err != nil {
			bad["error "+err.Error()]++
			continue
		}
		if !valid[string(data)] {
			bad[sha256Hex(data)[:12]+" of "+strconv.Itoa(len(data))+" bytes"]++
		}
	}
	close(stop)
	wg.Wait()
	if len(bad) > 0 {
		t.Errorf("reads during replacement returned what is no manifest: %v", bad)
	}

	// Reads bypass the page cache; mapping the file still works.
	mf, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer mf.Close()
	st0, err := mf.Stat()
	if err != nil {
		t.Fatal(err)
	}
	mapped, err := unix.Mmap(int(mf.Fd()), 0, int(st0.Size()), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		t.Fatalf("mmap of an image: %v", err)
	}
	if !valid[string(mapped)] {
		t.Errorf("mmap of an image shows %d bytes that are no manifest", len(mapped))
	}
	unix.Munmap(mapped)

	// Removed while open: the reader keeps the bytes it opened.
	r, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var st syscall.Stat_t
	if err := syscall.Stat(p, &st); err != nil {
		t.Fatal(err)
	}
	mustRun(t, d.mnt, "rm", imagePath("default", "app"))
	var got bytes.Buffer
	if _, err := got.ReadFrom(r); err != nil {
		t.Fatalf("read of a removed image: %v", err)
	}
	if !valid[got.String()] {
		t.Errorf("read of a removed image gave %d bytes that are no manifest", got.Len())
	}
}

// A process that keeps a directory of a namespace open (its working
// directory, say) while the namespace is deleted and made again must not
// reach into the new namespace, which may belong to someone else.
func TestDirectoriesOfADeletedNamespaceStayDeleted(t *testing.T) {
	t.Parallel()
	d := startNsfs(t)
	m := d.mnt
	img := newImage(1006, "amd64", 100)
	mustRun(t, m, "mkdir", "ns/tenant")
	oldNS, err := os.Open(d.path("ns/tenant"))
	if err != nil {
		t.Fatal(err)
	}
	defer oldNS.Close()
	oldImages, err := os.Open(d.path("ns/tenant/images"))
	if err != nil {
		t.Fatal(err)
	}
	defer oldImages.Close()
	oldBlobs, err := os.Open(d.path("ns/tenant/blobs/sha256"))
	if err != nil {
		t.Fatal(err)
	}
	defer oldBlobs.Close()

	// Writes under way, which rmdir does not wait for.
	layer := img.layers[0]
	ingest, err := os.OpenFile(d.path(blobPath("tenant", layer.hex())), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o444)
	if err != nil {
		t.Fatal(err)
	}
	defer ingest.Close()
	if _, err := ingest.Write(layer.data); err != nil {
		t.Fatal(err)
	}
	pending, err := os.OpenFile(d.path(imagePath("tenant", "pending")), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer pending.Close()
	if _, err := pending.Write(img.manifest.data); err != nil {
		t.Fatal(err)
	}

	mustRun(t, m, "rmdir", "ns/tenant")
	mustRun(t, m, "mkdir", "ns/tenant")
	mustRun(t, m, "setfattr", "-n", "user.owner", "-v", "new", "ns/tenant")
	d.putImage(t, "tenant", "app", img)
	// The writes under way end without a trace: not in the new namespace.
	assertErrno(t, "close of an ingest into the deleted namespace", ingest.Close(), syscall.ENOENT)
	assertErrno(t, "close of an image written into the deleted namespace", pending.Close(), syscall.ENOENT)
	assertOutput(t, "ls ns/tenant/images", mustRun(t, m, "ls", "ns/tenant/images"), lines("app"))
	before := d.state(t)
	if ingests := ingestFiles(t, d.root); len(ingests) != 0 {
		t.Errorf("ROOT/ingest holds %v", ingests)
	}

	// What a shell left in the old directories would do, through the
	// descriptors (a chdir would disturb the other tests).
	if names, err := oldImages.Readdirnames(-1); err == nil && len(names) > 0 {
		t.Errorf("readdir of images/ of the deleted namespace lists the new one's: %v", names)
	}
	if fd, err := unix.Openat(int(oldImages.Fd()), "app", unix.O_RDONLY|unix.O_CLOEXEC, 0); err == nil {
		unix.Close(fd)
		t.Errorf("open of app through images/ of the deleted namespace succeeded")
	}
	if fd, err := unix.Openat(int(oldImages.Fd()), "new", unix.O_CREAT|unix.O_WRONLY|unix.O_EXCL|unix.O_CLOEXEC, 0o644); err == nil {
		unix.Write(fd, img.manifest.data)
		unix.Close(fd)
		t.Errorf("create through images/ of the deleted namespace succeeded")
	} else {
		assertErrno(t, "create through images/ of the deleted namespace", err, syscall.ENOENT)
	}
	err = unix.Unlinkat(int(oldImages.Fd()), "app", 0)
	assertErrno(t, "unlink through images/ of the deleted namespace", err, syscall.ENOENT)
	err = unix.Mkdirat(int(oldImages.Fd()), "sub", 0o755)
	assertErrno(t, "mkdir through images/ of the deleted namespace", err, syscall.ENOENT)
	if names, err := oldBlobs.Readdirnames(-1); err == nil && len(names) > 0 {
		t.Errorf("readdir of blobs/sha256 of the deleted namespace lists the new one's: %v", names)
	}
	err = unix.Unlinkat(int(oldBlobs.Fd()), img.config.hex(), 0)
	assertErrno(t, "rm of a blob through the deleted namespace", err, syscall.ENOENT)
	err = unix.Fsetxattr(int(oldNS.Fd()), "user.owner", []byte("old"), 0)
	assertErrno(t, "setxattr on the deleted namespace", err, syscall.ENOENT)
	d.assertUnchanged(t, "operations through directories of a deleted namespace", before)
}
