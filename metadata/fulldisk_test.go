package metadata

import (
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/opencontainers/go-digest"
	"github.com/pkg/errors"
	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"
)

// smallFilesystem mounts a tmpfs of sizeMiB at a new directory and returns
// it; it is unmounted at cleanup. Root only.
func smallFilesystem(t *testing.T, sizeMiB int) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%dm,mode=0700", sizeMiB), "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("mount tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

// openOnSmallFilesystem opens a store at <tmpfs>/store; the filler goes
// beside it, on the same filesystem.
func openOnSmallFilesystem(t *testing.T, sizeMiB int) (*DB, string) {
	t.Helper()
	fsDir := smallFilesystem(t, sizeMiB)
	db, err := Open(filepath.Join(fsDir, "store"), Options{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db, fsDir
}

// freeBytes is what statfs says is free on the filesystem of dir.
func freeBytes(t *testing.T, dir string) int64 {
	t.Helper()
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	return int64(st.Bavail) * st.Bsize
}

// fillFilesystem appends to <dir>/filler until the filesystem is full.
func fillFilesystem(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	for _, chunk := range []int{1 << 20, 4096, 1} {
		for {
			_, err := f.Write(buf[:chunk])
			if err == nil {
				continue
			}
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("fill %s: %v", path, err)
			}
			break
		}
	}
	if free := freeBytes(t, dir); free != 0 {
		t.Fatalf("filesystem of %s still has %d bytes free after filling", dir, free)
	}
	return path
}

// wantNoSpace checks that err is a full disk: errors.As finds ENOSPC.
func wantNoSpace(t *testing.T, what string, err error) {
	t.Helper()
	var errno syscall.Errno
	if !errors.As(err, &errno) || errno != syscall.ENOSPC {
		t.Fatalf("%s: %v, want an error carrying ENOSPC", what, err)
	}
}

// exhaustMetadata makes bbolt writes, smaller and smaller, until even a
// small one fails for want of space, so that meta.db has (almost) no free
// page left and the next commit must grow it. It checks that each failed
// write changed nothing.
func exhaustMetadata(t *testing.T, db *DB) {
	t.Helper()
	i := 0
	for _, pad := range []int{2000, 200, 0} {
		for ; ; i++ {
			if i > 100000 {
				t.Fatal("100000 namespaces created on a full filesystem")
			}
			before := dump(t, db)
			labels := map[string]string{"pad": string(make([]byte, pad))}
			_, err := db.Namespaces().Create(fmt.Sprintf("filler-%d", i), labels)
			if err == nil {
				continue
			}
			wantNoSpace(t, "NamespaceStore.Create on a full disk", err)
			if after := dump(t, db); after != before {
				t.Fatalf("a failed NamespaceStore.Create changed the store:\nbefore:\n%s\nafter:\n%s", before, after)
			}
			break
		}
	}
	checkInvariants(t, db)
}

func randomData(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// putBigImage puts image ref in ns with a layer of layerSize random bytes.
func putBigImage(t *testing.T, db *DB, ns, ref string, layerSize int) digest.Digest {
	t.Helper()
	config := mustWriteBlob(t, db, ns, []byte(`{"architecture":"amd64","os":"linux","ref":"`+ref+`"}`))
	layer := mustWriteBlob(t, db, ns, randomData(t, layerSize))
	if _, err := db.Images().Put(ImageWrite{Namespace: ns, Ref: ref, Manifest: manifestJSON(config, layer)}); err != nil {
		t.Fatalf("ImageStore.Put %s: %v", ref, err)
	}
	return layer.Digest
}

func reserveBytes(t *testing.T, db *DB) int64 {
	t.Helper()
	fi, err := os.Stat(filepath.Join(db.Root(), reserveName))
	if errors.Is(err, os.ErrNotExist) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Stat(filepath.Join(db.Root(), reserveName), &st); err != nil {
		t.Fatal(err)
	}
	if st.Blocks*512 < fi.Size() {
		t.Fatalf("reserve has %d bytes but only %d allocated: it must not be sparse", fi.Size(), st.Blocks*512)
	}
	return fi.Size()
}

// A new store keeps a reserve of real blocks beside meta.db.
func TestReserveIsCreatedWithRealBlocks(t *testing.T) {
	db := openTestDB(t, Options{})
	if got := reserveBytes(t, db); got != minReserve {
		t.Fatalf("reserve of a new store: %d bytes, want %d", got, minReserve)
	}
	// Gone (a crash while it was released): Open makes it again.
	root := db.Root()
	db.Close()
	if err := os.Remove(filepath.Join(root, reserveName)); err != nil {
		t.Fatal(err)
	}
	db, err := Open(root, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if got := reserveBytes(t, db); got != minReserve {
		t.Fatalf("reserve after Open: %d bytes, want %d", got, minReserve)
	}
}

// With the filesystem full (and meta.db without a free page), deleting an
// image, a blob and a namespace succeeds and frees space; writes fail with
// ENOSPC and change nothing; once there is room, writes work again and the
// reserve comes back.
func TestFullDiskDeletesSucceedAndFreeSpace(t *testing.T) {
	db, fsDir := openOnSmallFilesystem(t, 48)
	if got := reserveBytes(t, db); got != minReserve {
		t.Fatalf("reserve: %d bytes, want %d", got, minReserve)
	}
	if _, err := db.Namespaces().Create("doomed", nil); err != nil {
		t.Fatal(err)
	}
	putBigImage(t, db, "default", "a", 2<<20)
	putBigImage(t, db, "default", "b", 2<<20)
	putBigImage(t, db, "doomed", "c", 1<<20)
	loose := mustWriteBlob(t, db, "default", randomData(t, 1<<20))

	filler := fillFilesystem(t, fsDir)
	exhaustMetadata(t, db)

	// A blob write cannot fit: ENOSPC, and nothing is kept.
	before := dump(t, db)
	data := randomData(t, 64<<10)
	w, err := db.Content().Writer("default", 0, digest.FromBytes(data))
	if err != nil {
		t.Fatalf("ContentStore.Writer: %v", err)
	}
	_, err = w.Write(data)
	wantNoSpace(t, "blob written on a full disk", err)
	// The close that follows (fs/ commits at close) says ENOSPC too, not
	// that the bytes written hash to another digest.
	wantNoSpace(t, "Commit of a blob whose write failed", w.Commit())
	if after := dump(t, db); after != before {
		t.Fatalf("a failed blob write changed the store:\n%s\n---\n%s", before, after)
	}

	free := freeBytes(t, fsDir)
	if err := db.Images().Delete("default", "a"); err != nil {
		t.Fatalf("ImageStore.Delete on a full disk: %v", err)
	}
	if got := freeBytes(t, fsDir); got < free+2<<20 {
		t.Errorf("ImageStore.Delete freed %d bytes, want at least its 2 MiB layer", got-free)
	}
	// It took the reserve (the test fills meta.db too), and there is not
	// yet room to restore it.
	if got := reserveBytes(t, db); got != 0 {
		t.Errorf("reserve after the first delete on a full disk: %d bytes, want 0 (used)", got)
	}
	if err := db.Content().Delete("default", loose.Digest); err != nil {
		t.Fatalf("ContentStore.Delete on a full disk: %v", err)
	}
	if err := db.Images().Delete("doomed", "c"); err != nil {
		t.Fatalf("ImageStore.Delete on a full disk: %v", err)
	}
	for _, d := range heldDigests(t, db, "doomed") {
		if err := db.Content().Delete("doomed", d); err != nil {
			t.Fatalf("ContentStore.Delete on a full disk: %v", err)
		}
	}
	if _, err := db.Namespaces().Delete("doomed"); err != nil {
		t.Fatalf("NamespaceStore.Delete on a full disk: %v", err)
	}
	checkInvariants(t, db)
	if got := freeBytes(t, fsDir); got <= free {
		t.Errorf("free space %d after the deletes, was %d", got, free)
	}

	// What fits now is written.
	mustWriteBlob(t, db, "default", randomData(t, 512<<10))
	if _, err := db.Namespaces().Create("after", nil); err != nil {
		t.Fatalf("NamespaceStore.Create once space was freed: %v", err)
	}

	// With the filler gone the reserve is back at its size.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if err := db.Images().Delete("default", "b"); err != nil {
		t.Fatal(err)
	}
	if got := reserveBytes(t, db); got != minReserve {
		t.Errorf("reserve after space was freed: %d bytes, want %d", got, minReserve)
	}
	checkInvariants(t, db)
}

// Without the reserve, a delete on a full disk fails — the problem the
// reserve solves — and the failed commit leaves the store unchanged and
// usable: once space is freed the same delete succeeds.
func TestFullDiskWithoutReserveFailsCleanly(t *testing.T) {
	db, fsDir := openOnSmallFilesystem(t, 32)
	putBigImage(t, db, "default", "a", 1<<20)
	db.reserveMu.Lock()
	db.releaseReserveLocked()
	db.reserveMu.Unlock()

	filler := fillFilesystem(t, fsDir)
	exhaustMetadata(t, db)

	before := dump(t, db)
	err := db.Images().Delete("default", "a")
	wantNoSpace(t, "ImageStore.Delete on a full disk without a reserve", err)
	if after := dump(t, db); after != before {
		t.Fatalf("a failed ImageStore.Delete changed the store:\n%s\n---\n%s", before, after)
	}
	checkInvariants(t, db)

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if err := db.Images().Delete("default", "a"); err != nil {
		t.Fatalf("ImageStore.Delete once space was freed: %v", err)
	}
	checkInvariants(t, db)
	if got := reserveBytes(t, db); got != minReserve {
		t.Errorf("reserve after space was freed: %d bytes, want %d", got, minReserve)
	}

	// Reopened, the store reads back what was committed.
	root := db.Root()
	db.Close()
	db2, err := Open(root, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	if _, err := db2.GetImage("default", "a"); !IsNotFound(err) {
		t.Fatalf("GetImage of the deleted image after reopening: %v", err)
	}
	checkInvariants(t, db2)
}

// A delete that shares a group commit with writes on a full disk: the
// group's commit fails, the writes get ENOSPC, and the delete commits
// again alone with the reserve.
func TestFullDiskGroupCommitRetriesOnlyTheDelete(t *testing.T) {
	db, fsDir := openOnSmallFilesystem(t, 32)
	putBigImage(t, db, "default", "a", 1<<20)
	fillFilesystem(t, fsDir)
	exhaustMetadata(t, db)

	release, leader := holdLeader(db, func(*bolt.Tx) error { return nil })
	deleted, created := make(chan error, 1), make(chan error, 1)
	go func() { deleted <- db.Images().Delete("default", "a") }()
	go func() {
		_, err := db.Namespaces().Create("late", map[string]string{"pad": string(make([]byte, 1000))})
		created <- err
	}()
	waitPending(t, db, 2)
	release()
	if err := <-leader; err != nil && !isNoSpace(err) {
		t.Fatalf("the leader: %v", err)
	}
	if err := <-deleted; err != nil {
		t.Fatalf("ImageStore.Delete grouped with a write on a full disk: %v", err)
	}
	wantNoSpace(t, "NamespaceStore.Create grouped with a delete on a full disk", <-created)
	if _, err := db.GetNamespace("late"); !IsNotFound(err) {
		t.Fatalf("the namespace whose create failed: %v", err)
	}
	if _, err := db.GetImage("default", "a"); !IsNotFound(err) {
		t.Fatalf("the deleted image: %v", err)
	}
	if got := reserveBytes(t, db); got != 0 {
		t.Errorf("reserve: %d bytes, want 0 (used by the delete)", got)
	}
	checkInvariants(t, db)
}

// pageAlloc runs fn in one write transaction and returns the bytes of
// pages its commit allocated: what it needs from the filesystem when the
// freelist has nothing to give.
func pageAlloc(t *testing.T, db *DB, fn func(tx *bolt.Tx) error) int64 {
	t.Helper()
	before := db.bolt.Stats()
	if err := db.bolt.Update(fn); err != nil {
		t.Fatal(err)
	}
	after := db.bolt.Stats()
	return after.TxStats.GetPageAlloc() - before.TxStats.GetPageAlloc()
}

// The reserve must cover one freeing commit. This measures what deletes
// allocate in a store of a few thousand images, as one transaction each
// and as the groups concurrent deletes share, and checks that the reserve
// covers the largest several times over (docs/robustness.md quotes it).
func TestReserveCoversOneDeleteCommit(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a store of 2000 images")
	}
	fsDir := smallFilesystem(t, 512)
	db, err := Open(filepath.Join(fsDir, "store"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.setCommitMode(commitEach)
	const images = 2000
	base := mustWriteBlob(t, db, "default", []byte("a base layer every image shares"))
	for i := 0; i < images; i++ {
		config := mustWriteBlob(t, db, "default", []byte(fmt.Sprintf(`{"architecture":"amd64","os":"linux","n":%d}`, i)))
		layer := mustWriteBlob(t, db, "default", []byte(fmt.Sprintf("layer %d", i)))
		m := manifestJSON(config, base, layer)
		if _, err := db.Images().Put(ImageWrite{Namespace: "default", Ref: fmt.Sprintf("library/app-%04d:v1", i), Manifest: m}); err != nil {
			t.Fatal(err)
		}
	}
	var metaSize int64
	_ = db.bolt.View(func(tx *bolt.Tx) error { metaSize = tx.Size(); return nil })
	reserve := reserveSize(metaSize)

	next := 0
	deleteImages := func(n int) int64 {
		refs := make([]string, n)
		for i := range refs {
			refs[i] = fmt.Sprintf("library/app-%04d:v1", next)
			next++
		}
		return pageAlloc(t, db, func(tx *bolt.Tx) error {
			nsb, err := namespaceBucket(tx, "default")
			if err != nil {
				return err
			}
			for _, ref := range refs {
				rel := &releases{ns: "default"}
				if err := releaseImage(tx, nsb, "default", ref, rel); err != nil {
					return err
				}
			}
			return nil
		})
	}
	size := func() int64 {
		var n int64
		_ = db.bolt.View(func(tx *bolt.Tx) error { n = tx.Size(); return nil })
		return n
	}
	one := deleteImages(1)
	group10 := deleteImages(10)
	group100 := deleteImages(100)
	group1000 := deleteImages(1000)
	// rm -rf deletes one image per commit; each reuses what the one
	// before freed, so meta.db hardly grows.
	before := size()
	for i := 0; i < 100; i++ {
		deleteImages(1)
	}
	growth := size() - before
	stats := db.bolt.Stats()
	t.Logf("meta.db %d KiB with %d images; reserve %d KiB; freelist %d KiB", metaSize>>10, images, reserve>>10, stats.FreelistInuse>>10)
	t.Logf("a commit deleting 1 image allocates %d KiB, 10: %d KiB, 100: %d KiB, 1000: %d KiB; 100 deletes in a row grow meta.db by %d KiB",
		one>>10, group10>>10, group100>>10, group1000>>10, growth>>10)
	if one*16 > reserve || group1000*2 > reserve || growth*4 > reserve {
		t.Errorf("the reserve (%d KiB) does not cover deletes several times over", reserve>>10)
	}
}
