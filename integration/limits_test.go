package integration

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// No user can take the daemon down for the others: open descriptors of an
// image cost the daemon neither memory nor descriptors, and the handles
// that do (ingests, blob readers, image writers) are bounded per user.

// Non-root users of these tests. The mount is not allow_other: the kernel
// lets the test process (root) in and, without default_permissions,
// checks no mode bits; a thread whose filesystem uid is one of these then
// makes requests the daemon sees as that user's (asUser).
const (
	userA = 64001
	userB = 64002
)

// asUser runs fn on this goroutine's OS thread with filesystem uid uid:
// every request fn makes reaches the daemon as uid's. fn must make its
// system calls itself (no other goroutine), with paths relative to
// directories opened before (the test's temporary directories are 0700,
// which uid cannot search).
func asUser(t *testing.T, uid int, fn func()) {
	t.Helper()
	runtime.LockOSThread()
	if err := unix.Setfsuid(uid); err != nil {
		runtime.UnlockOSThread()
		t.Fatalf("setfsuid %d: %v", uid, err)
	}
	// setfsuid reports no failure: -1 changes nothing and returns the
	// filesystem uid in force.
	if got, _ := unix.SetfsuidRetUid(-1); got != uid {
		unix.Setfsuid(0)
		runtime.UnlockOSThread()
		t.Fatalf("setfsuid %d: the thread's filesystem uid is %d", uid, got)
	}
	defer func() {
		unix.Setfsuid(0)
		if got, _ := unix.SetfsuidRetUid(-1); got != 0 {
			// Never hand this thread back: it dies with the goroutine.
			t.Errorf("setfsuid 0: the thread's filesystem uid is still %d", got)
			return
		}
		runtime.UnlockOSThread()
	}()
	fn()
}

// openDir opens a directory of the mount (as root) for *at calls.
func openDir(t *testing.T, p string) int {
	t.Helper()
	fd, err := unix.Open(p, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("open %s: %v", p, err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return fd
}

// fakeHex is a sha256 name no content of these tests has.
func fakeHex(seed int) string { return sha256Hex([]byte("nsfs limits test " + strconv.Itoa(seed))) }

// openIngest starts an ingest of blob hex in the directory dirfd
// (blobs/sha256 of a namespace), as open(O_CREAT|O_EXCL) does.
func openIngest(dirfd int, hex string) (int, error) {
	return unix.Openat(dirfd, hex, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0o444)
}

func closeAll(t *testing.T, fds []int) {
	t.Helper()
	for _, fd := range fds {
		if err := unix.Close(fd); err != nil {
			t.Errorf("close: %v", err)
		}
	}
}

// readFD reads fd from offset 0 to its end with pread (the descriptor
// stays the caller's to close).
func readFD(fd int) ([]byte, error) {
	var out []byte
	buf := make([]byte, 1<<20) // as large as the mount takes in one read
	for {
		n, err := unix.Pread(fd, buf, int64(len(out)))
		if err != nil {
			return out, err
		}
		if n == 0 {
			return out, nil
		}
		out = append(out, buf[:n]...)
	}
}

// assertRefused checks that an open failed with want; a descriptor it
// returned anyway is closed, so that the mount can still be unmounted.
func assertRefused(t *testing.T, what string, fd int, err error, want syscall.Errno) {
	t.Helper()
	if err == nil {
		unix.Close(fd)
	}
	assertErrno(t, what, err, want)
}

// daemonFDs is the number of descriptors the daemon has open.
func (d *daemon) daemonFDs(t *testing.T) int {
	t.Helper()
	entries, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", d.pid()))
	if err != nil {
		t.Fatal(err)
	}
	return len(entries)
}

// waitNoIngests polls until ROOT/ingest is empty: the kernel releases a
// closed handle after close returns.
func (d *daemon) waitNoIngests(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for len(ingestFiles(t, d.root)) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("unfinished ingests left after every writer closed: %v", ingestFiles(t, d.root))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// retryWhile repeats open while it fails with errno (a handle closed a
// moment ago is released after close returns), until a deadline.
func retryWhile(errno syscall.Errno, open func() (int, error)) (int, error) {
	deadline := time.Now().Add(5 * time.Second)
	for {
		fd, err := open()
		if err != errno || time.Now().After(deadline) {
			return fd, err
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// 1,000 descriptors of a 4 MiB image, each read, cost the daemon neither
// a copy of the manifest each nor a descriptor each (a copy per open took
// it from 45 MB to 2.9 GB with 500).
func TestImageReadersHoldNoMemoryOrDescriptors(t *testing.T) {
	t.Parallel()
	d := startNsfs(t)
	img := newImage(7001, "amd64", 100)
	d.putBlob(t, "default", img.config)
	d.putBlob(t, "default", img.layers[0])
	big := paddedManifest(t, img, 4<<20-1000)
	d.putManifest(t, "default", "big", big)
	p := d.path(imagePath("default", "big"))

	// Warm up: the daemon's request buffers exist before the baseline.
	if data, err := os.ReadFile(p); err != nil || !bytes.Equal(data, big) {
		t.Fatalf("read of the 4 MiB image: %d bytes, %v", len(data), err)
	}
	rssBefore := procStatusKiB(t, d.pid(), "VmRSS:") << 10
	fdsBefore := d.daemonFDs(t)
	logBefore := d.logs.String()

	const readers = 1000
	fds := make([]int, 0, readers)
	defer func() { closeAll(t, fds) }()
	for i := 0; i < readers; i++ {
		fd, err := unix.Open(p, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatalf("open #%d of the image: %v", i+1, err)
		}
		fds = append(fds, fd)
	}
	chunk := make([]byte, 64<<10)
	for i, fd := range fds {
		off := int64(i*4099) % int64(len(big)-len(chunk))
		n, err := unix.Pread(fd, chunk, off)
		if err != nil || !bytes.Equal(chunk[:n], big[off:off+int64(len(chunk))]) {
			t.Fatalf("pread of descriptor #%d at %d: %d bytes, %v; want the image's", i+1, off, n, err)
		}
	}
	// Some read to the end, through every read the kernel splits it into.
	for i := 0; i < readers; i += 100 {
		if got, err := readFD(fds[i]); err != nil || !bytes.Equal(got, big) {
			t.Fatalf("read of descriptor #%d: %d bytes, %v; want the image's %d", i+1, len(got), err, len(big))
		}
	}
	rssAfter := procStatusKiB(t, d.pid(), "VmRSS:") << 10
	fdsAfter := d.daemonFDs(t)
	t.Logf("daemon RSS %d MiB -> %d MiB, descriptors %d -> %d, with %d readers of a %d-byte image open",
		rssBefore>>20, rssAfter>>20, fdsBefore, fdsAfter, readers, len(big))
	if grown := rssAfter - rssBefore; grown > 64<<20 {
		t.Errorf("the daemon's RSS grew by %d MiB with %d readers of one 4 MiB image, want under 64 MiB", grown>>20, readers)
	}
	// Nor a log line per read: a user reading could fill the log.
	if logAfter := d.logs.String(); logAfter != logBefore {
		t.Errorf("the daemon logged while readers read:\n%s", logAfter[len(logBefore):])
	}
	if grown := fdsAfter - fdsBefore; grown > 32 {
		t.Errorf("the daemon holds %d more descriptors with %d readers of one image open, want none per reader", grown, readers)
	}
}

// A user who opens ingests until the daemon refuses gets EMFILE, never
// EIO, and only that user is refused: root reads images and writes in
// other namespaces meanwhile, and another user ingests. All users
// together stop at --max-open (ENFILE), while images can still be read.
// Once the descriptors are closed, nothing of the ingests is left and the
// user ingests again.
func TestOpenHandlesAreBoundedPerUser(t *testing.T) {
	t.Parallel()
	const perUser, all = 8, 12
	d := startNsfs(t, withFlags("--max-open-per-user", strconv.Itoa(perUser), "--max-open", strconv.Itoa(all)))
	m := d.mnt
	img := newImage(7002, "amd64", 100, 200)
	d.putImage(t, "default", "app", img)
	mustRun(t, m, "mkdir", "ns/other")
	blobsDir := openDir(t, d.path("ns", "default", "blobs", "sha256"))
	imagesDir := openDir(t, d.path("ns", "default", "images"))
	nsDir := openDir(t, d.path("ns", "default"))

	var held []int
	defer func() { closeAll(t, held) }()
	asUser(t, userA, func() {
		for i := 0; i < perUser; i++ {
			fd, err := openIngest(blobsDir, fakeHex(i))
			if err != nil {
				t.Fatalf("uid %d: ingest #%d of %d allowed: %v", userA, i+1, perUser, err)
			}
			held = append(held, fd)
		}
	})
	before := d.state(t)
	asUser(t, userA, func() {
		fd, err := openIngest(blobsDir, fakeHex(perUser))
		assertRefused(t, "one more ingest of a user at its limit", fd, err, syscall.EMFILE)
		fd, err = unix.Openat(blobsDir, img.layers[0].hex(), unix.O_RDONLY|unix.O_CLOEXEC, 0)
		assertRefused(t, "a blob reader (a descriptor) of a user at its limit", fd, err, syscall.EMFILE)
		fd, err = unix.Openat(imagesDir, "new", unix.O_WRONLY|unix.O_CREAT|unix.O_TRUNC|unix.O_CLOEXEC, 0o644)
		assertRefused(t, "an image writer of a user at its limit", fd, err, syscall.EMFILE)
		// index.json's handles hold their bytes in the daemon.
		fd, err = unix.Openat(nsDir, "index.json", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		assertRefused(t, "a reader of index.json of a user at its limit", fd, err, syscall.EMFILE)
		// An image reader holds nothing in the daemon: not refused.
		fd, err = unix.Openat(imagesDir, "app", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatalf("uid %d at its limit: open of an image for reading: %v", userA, err)
		}
		buf := make([]byte, len(img.manifest.data)+10)
		n, err := unix.Read(fd, buf)
		unix.Close(fd)
		if err != nil || !bytes.Equal(buf[:n], img.manifest.data) {
			t.Errorf("uid %d at its limit: read of an image: %d bytes, %v", userA, n, err)
		}
	})
	d.assertUnchanged(t, "refused opens", before)

	// Root reads and writes; another user ingests.
	assertOutput(t, "sha256sum of an image while a user is at its limit",
		mustRun(t, m, "sha256sum", imagePath("default", "app")), img.manifest.hex()+"  "+imagePath("default", "app")+"\n")
	other := newImage(7003, "arm64", 300)
	d.putImage(t, "other", "app", other)
	assertOutput(t, "cat of an image root wrote meanwhile", mustRun(t, m, "cat", imagePath("other", "app")), string(other.manifest.data))
	asUser(t, userB, func() {
		loose := randomBytes(7004, 1000)
		fd, err := openIngest(blobsDir, sha256Hex(loose))
		if err != nil {
			t.Fatalf("uid %d, while uid %d is at its limit: ingest: %v", userB, userA, err)
		}
		if _, err := unix.Write(fd, loose); err != nil {
			t.Errorf("uid %d: write of a blob: %v", userB, err)
		}
		if err := unix.Close(fd); err != nil {
			t.Errorf("uid %d: close (commit) of a blob: %v", userB, err)
		}
	})
	mustRun(t, m, "stat", blobPath("default", sha256Hex(randomBytes(7004, 1000))))

	// Everyone together: root fills what the mount has left.
	otherBlobs := openDir(t, d.path("ns", "other", "blobs", "sha256"))
	var rootHeld []int
	var err error
	for i := 0; i <= all; i++ {
		var fd int
		if fd, err = openIngest(otherBlobs, fakeHex(100+i)); err != nil {
			break
		}
		rootHeld = append(rootHeld, fd)
	}
	assertErrno(t, "an ingest by root with the mount at --max-open", err, syscall.ENFILE)
	if len(rootHeld) > all-perUser {
		t.Errorf("root opened %d ingests with uid %d holding %d and --max-open %d", len(rootHeld), userA, perUser, all)
	}
	fd, err := unix.Openat(blobsDir, img.layers[0].hex(), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	assertRefused(t, "a blob reader by root with the mount at --max-open", fd, err, syscall.ENFILE)
	assertOutput(t, "sha256sum of an image with the mount at --max-open",
		mustRun(t, m, "sha256sum", imagePath("default", "app")), img.manifest.hex()+"  "+imagePath("default", "app")+"\n")
	closeAll(t, rootHeld)

	// Closed: no ingest is left, on disk or in the mount, and the user
	// ingests again.
	closeAll(t, held)
	held = nil
	d.waitNoIngests(t)
	for i := 0; i < perUser; i++ {
		if _, err := os.Stat(d.path(blobPath("default", fakeHex(i)))); !os.IsNotExist(err) {
			t.Errorf("stat of an ingest closed without data: %v, want ENOENT", err)
		}
	}
	listing := mustRun(t, m, "ls", "ns/default/blobs/sha256")
	for i := 0; i < perUser; i++ {
		if bytes.Contains([]byte(listing), []byte(fakeHex(i))) {
			t.Errorf("ls blobs/sha256 lists an ingest closed without data: %s", fakeHex(i))
		}
	}
	asUser(t, userA, func() {
		loose := randomBytes(7005, 5000)
		fd, err := retryWhile(syscall.EMFILE, func() (int, error) { return openIngest(blobsDir, sha256Hex(loose)) })
		if err != nil {
			t.Fatalf("uid %d, its descriptors closed: ingest: %v", userA, err)
		}
		if _, err := unix.Write(fd, loose); err != nil {
			t.Errorf("uid %d: write of a blob: %v", userA, err)
		}
		if err := unix.Close(fd); err != nil {
			t.Errorf("uid %d: close (commit) of a blob: %v", userA, err)
		}
	})
	if data, err := os.ReadFile(d.path(blobPath("default", sha256Hex(randomBytes(7005, 5000))))); err != nil || !bytes.Equal(data, randomBytes(7005, 5000)) {
		t.Errorf("read of the blob uid %d ingested after closing: %d bytes, %v", userA, len(data), err)
	}
}

// An image writer's buffer counts against its user's
// --max-buffered-per-user: the write that would pass it is ENOMEM (the
// daemon's memory, not the file, is what is short), the close fails with
// ENOMEM and nothing is stored. Root is not bound by it; the user writes
// again once the writer is closed.
func TestImageWriterBuffersAreBoundedPerUser(t *testing.T) {
	t.Parallel()
	d := startNsfs(t, withFlags("--max-buffered-per-user", strconv.Itoa(1<<20)))
	img := newImage(7006, "amd64", 100)
	d.putBlob(t, "default", img.config)
	d.putBlob(t, "default", img.layers[0])
	big := paddedManifest(t, img, 4<<20)
	imagesDir := openDir(t, d.path("ns", "default", "images"))

	before := d.state(t)
	asUser(t, userA, func() {
		fd, err := unix.Openat(imagesDir, "big", unix.O_WRONLY|unix.O_CREAT|unix.O_TRUNC|unix.O_CLOEXEC, 0o644)
		if err != nil {
			t.Fatalf("uid %d: create of an image: %v", userA, err)
		}
		const chunk = 256 << 10
		written := 0
		for written < len(big) {
			n, err := unix.Write(fd, big[written:written+chunk])
			if err != nil {
				assertErrno(t, "a write past the user's buffer limit", err, syscall.ENOMEM)
				break
			}
			written += n
		}
		if written > 1<<20 || written == len(big) {
			t.Errorf("uid %d wrote %d bytes of an image with a 1 MiB buffer limit", userA, written)
		}
		assertErrno(t, "close of an image whose write was refused", unix.Close(fd), syscall.ENOMEM)
	})
	d.assertUnchanged(t, "an image write past the buffer limit", before)
	mustFail(t, d.mnt, "No such file or directory", "stat", imagePath("default", "big"))

	// Root is bound by the daemon-wide limit only.
	d.putManifest(t, "default", "big", big)
	assertOutput(t, "sha256sum of the image root wrote", mustRun(t, d.mnt, "sha256sum", imagePath("default", "big")),
		sha256Hex(big)+"  "+imagePath("default", "big")+"\n")

	asUser(t, userA, func() {
		// Rewriting the 4 MiB image starts from its bytes: over the limit
		// at open.
		fd, err := unix.Openat(imagesDir, "big", unix.O_RDWR|unix.O_CLOEXEC, 0)
		assertRefused(t, "an open for rewriting of a 4 MiB image over the buffer limit", fd, err, syscall.ENOMEM)
		// Reading it needs no buffer.
		fd, err = unix.Openat(imagesDir, "big", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatalf("uid %d: open of the image for reading: %v", userA, err)
		}
		got, err := readFD(fd)
		unix.Close(fd)
		if err != nil || !bytes.Equal(got, big) {
			t.Errorf("uid %d: read of the 4 MiB image: %d bytes, %v", userA, len(got), err)
		}
		// A manifest within the limit is written.
		fd, err = retryWhile(syscall.ENOMEM, func() (int, error) {
			return unix.Openat(imagesDir, "small", unix.O_WRONLY|unix.O_CREAT|unix.O_TRUNC|unix.O_CLOEXEC, 0o644)
		})
		if err != nil {
			t.Fatalf("uid %d: create of a small image: %v", userA, err)
		}
		if _, err := unix.Write(fd, img.manifest.data); err != nil {
			t.Errorf("uid %d: write of a small image: %v", userA, err)
		}
		if err := unix.Close(fd); err != nil {
			t.Errorf("uid %d: close of a small image: %v", userA, err)
		}
	})
	assertOutput(t, "sha256sum of the image uid "+strconv.Itoa(userA)+" wrote",
		mustRun(t, d.mnt, "sha256sum", filepath.Join("ns", "default", "images", "small")),
		img.manifest.hex()+"  "+imagePath("default", "small")+"\n")
}
