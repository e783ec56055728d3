package metadata

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// deleteImages removes refs of ns in one transaction (what many rm's do).
func deleteImages(t *testing.T, db *DB, ns string, refs []string) {
	t.Helper()
	err := db.deleteReleasing(ns, func(tx *bolt.Tx, rel *releases) error {
		nsb, err := namespaceBucket(tx, ns)
		if err != nil {
			return err
		}
		for _, ref := range refs {
			if err := deleteImage(tx, nsb, ns, ref, rel); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// usedBytes is how far into meta.db bbolt has ever written: the file
// less what bbolt preallocated beyond it.
func usedBytes(t *testing.T, db *DB) int64 {
	t.Helper()
	var n int64
	_ = db.bolt.View(func(tx *bolt.Tx) error {
		n = tx.Size()
		return nil
	})
	return n
}

func manyRefs(prefix string, n int) []string {
	refs := make([]string, n)
	for i := range refs {
		refs[i] = fmt.Sprintf("%s-%05d", prefix, i)
	}
	return refs
}

// An image costs at most a few hundred bytes of meta.db (no bucket of its
// own), and the pages deleted images free are reused by the next ones:
// writing and deleting the same number of images again and again does not
// grow the file.
func TestImageRecordSizeAndReuse(t *testing.T) {
	db := openTestDB(t, Options{})
	img := seedImage(t, db, "default", "app")
	const n = 5000
	start := usedBytes(t, db)
	var used []int64
	for round := 0; round < 4; round++ {
		refs := manyRefs(fmt.Sprintf("r%d", round), n)
		putImages(t, db, "default", img.manifest, refs)
		used = append(used, usedBytes(t, db))
		if round == 0 {
			if per := (used[0] - start) / n; per > 700 {
				t.Errorf("meta.db grew %d bytes per image, want at most 700", per)
			}
			checkInvariants(t, db)
		}
		deleteImages(t, db, "default", refs)
	}
	t.Logf("meta.db bytes used after each round of %d images: %v (%d before)", n, used, start)
	// The second round may need some more (the first one's pages are
	// freed by the transaction after it); then it stays.
	if last := used[len(used)-1]; last > used[1]+used[1]/20 || last > used[0]*3/2 {
		t.Errorf("meta.db used bytes over rounds of writing and deleting %d images: %v, want it to stop growing", n, used)
	}
	checkInvariants(t, db)
}

// nsfs gc --compact: a store that once held many more images shrinks, and
// reads exactly as before.
func TestCompact(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	img := seedImage(t, db, "default", "app")
	putImages(t, db, "default", img.manifest, manyRefs("a", 5000))
	deleteImages(t, db, "default", manyRefs("a", 5000)[10:])
	want := dump(t, db)
	db.Close()

	stats, err := Compact(dir)
	if err != nil {
		t.Fatalf("Compact: %v", err)
	}
	fi, err := os.Stat(metaPath(dir))
	if err != nil {
		t.Fatal(err)
	}
	if stats.After != fi.Size() || stats.After >= stats.Before/4 {
		t.Errorf("Compact: %+v, meta.db now %d bytes: want it a quarter of the size or less", stats, fi.Size())
	}
	if _, err := os.Stat(metaPath(dir) + ".compact"); !os.IsNotExist(err) {
		t.Errorf("meta.db.compact left behind: %v", err)
	}
	db, err = Open(dir, Options{})
	if err != nil {
		t.Fatalf("open the compacted store: %v", err)
	}
	defer db.Close()
	if got := dump(t, db); got != want {
		t.Errorf("the compacted store differs:\n%s\nwant:\n%s", got, want)
	}
	checkInvariants(t, db)
	if rep := mustCheck(t, db, CheckOptions{VerifyBlobs: true}); len(rep.Problems) != 0 {
		t.Fatalf("fsck of the compacted store:\n%s", problemLines(rep.Problems))
	}
	putImages(t, db, "default", img.manifest, manyRefs("b", 100))
	checkInvariants(t, db)
}

// Compact refuses a store in use (ErrLocked) and leaves it as it was.
func TestCompactRefusesAnOpenStore(t *testing.T) {
	db := openTestDB(t, Options{})
	before := dump(t, db)
	if _, err := Compact(db.Root()); !IsLocked(err) {
		t.Fatalf("Compact of an open store: %v, want ErrLocked", err)
	}
	if _, err := os.Stat(metaPath(db.Root()) + ".compact"); !os.IsNotExist(err) {
		t.Errorf("meta.db.compact made for a store in use: %v", err)
	}
	if got := dump(t, db); got != before {
		t.Errorf("the store changed:\n%s\nwant:\n%s", got, before)
	}
}

// An Open that waits for the lock of a meta.db that Compact then replaces
// opens the new file, never the unlinked old one (whose changes would be
// lost): here the wait of openBolt's read-only open (openCurrentBolt
// covers the one of its second open).
func TestOpenWaitingWhileMetaIsReplaced(t *testing.T) {
	dir, other := t.TempDir(), t.TempDir()
	for _, c := range []struct{ root, ns string }{{dir, "old-file"}, {other, "new-file"}} {
		db, err := Open(c.root, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.Namespaces().Create(c.ns, nil); err != nil {
			t.Fatal(err)
		}
		db.Close()
	}
	holder, err := bolt.Open(metaPath(dir), 0o600, nil) // what Compact holds
	if err != nil {
		t.Fatal(err)
	}
	type opened struct {
		db  *DB
		err error
	}
	done := make(chan opened, 1)
	go func() {
		db, err := Open(dir, Options{})
		done <- opened{db, err}
	}()
	// Once the Open has meta.db open too, it waits for the lock.
	deadline := time.Now().Add(lockTimeout / 2)
	for openFiles(t, metaPath(dir)) < 2 {
		if time.Now().After(deadline) {
			t.Fatal("the Open never opened meta.db")
		}
		time.Sleep(time.Millisecond)
	}
	if err := os.Rename(metaPath(other), metaPath(dir)); err != nil {
		t.Fatal(err)
	}
	holder.Close()
	got := <-done
	if got.err != nil {
		t.Fatalf("Open while meta.db was replaced: %v", got.err)
	}
	defer got.db.Close()
	if _, err := got.db.Namespaces().Stat("new-file"); err != nil {
		t.Errorf("the Open serves the replaced file: %v", err)
	}
}

// openFiles counts this process's descriptors open on path.
func openFiles(t *testing.T, path string) int {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, fd := range fds {
		if target, err := os.Readlink("/proc/self/fd/" + fd.Name()); err == nil && target == path {
			n++
		}
	}
	return n
}

// The copy a killed gc --compact left is garbage: the next collection
// removes it and says so.
func TestGCRemovesACompactLeftover(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := os.WriteFile(filepath.Join(dir, CompactLeftover), make([]byte, 8192), 0o600); err != nil {
		t.Fatal(err)
	}
	stats, err := db.CollectGarbage(GCOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(stats.Removed) != 1 || stats.Removed[0].Path != CompactLeftover || stats.Bytes != 8192 {
		t.Fatalf("collected %+v, want the leftover %s of 8192 bytes", stats, CompactLeftover)
	}
	if _, err := os.Stat(filepath.Join(dir, CompactLeftover)); !os.IsNotExist(err) {
		t.Fatalf("the leftover is still there: %v", err)
	}
}
