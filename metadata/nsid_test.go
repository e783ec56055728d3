package metadata

import (
	"fmt"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// recoverRefuses opens the store at root and asserts that Recover refuses
// it with ErrDamaged, its message naming want.
func recoverRefuses(t *testing.T, root, want string) {
	t.Helper()
	db, err := Open(root, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Recover(); !IsDamaged(err) {
		t.Fatalf("Recover: %v, want ErrDamaged", err)
	} else if !strings.Contains(err.Error(), want) {
		t.Errorf("Recover: %v, want it to name %q", err, want)
	}
}

// repairCleanly runs fsck --repair on the store at root, asserts that a
// second fsck finds nothing, and returns the store opened and recovered.
func repairCleanly(t *testing.T, root string) (*DB, Report) {
	t.Helper()
	rep, err := Repair(root, CheckOptions{})
	if err != nil || !rep.Clean() {
		t.Fatalf("Repair: %+v, %v", rep, err)
	}
	db, err := Open(root, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Recover(); err != nil {
		t.Fatalf("Recover after the repair (repairs %q): %v", rep.Repairs, err)
	}
	if after, err := db.Check(CheckOptions{}); err != nil || !after.Clean() {
		t.Fatalf("fsck after the repair: %+v, %v", after.Problems, err)
	}
	return db, rep
}

// A namespace record whose ID reads 0 would name nsdata/0, the empty data
// every namespace without data of its own reads: its writes would show in
// the others. The mount refuses it as a record without an ID, and fsck
// --repair gives it back the data bucket it lost.
func TestZeroNamespaceIDIsRefusedAndRepaired(t *testing.T) {
	root, kept := storeWithBlob(t)
	db, err := Open(root, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Namespaces().Create("other", nil); err != nil {
		t.Fatal(err)
	}
	db.Close()
	mutateStore(t, root, func(tx *bolt.Tx) error {
		return putUint64(namespacesBucket(tx).Bucket([]byte(defaultNamespace)), keyID, 0)
	})
	recoverRefuses(t, root, `namespace record "default": has no ID`)

	db, _ = repairCleanly(t, root)
	if b, err := db.GetBlob(defaultNamespace, kept); err != nil || !b.Held {
		t.Fatalf("default's blob after the repair: %+v, %v", b, err)
	}
	img := seedImage(t, db, defaultNamespace, "redis")
	if _, err := db.Images().Put(ImageWrite{Namespace: defaultNamespace, Ref: "app:v1", Manifest: img.manifest}); err != nil {
		t.Fatal(err)
	}
	if imgs, err := db.ListImages("other"); err != nil || len(imgs) != 0 {
		t.Errorf("namespace other lists %d images (%v), want none of default's", len(imgs), err)
	}
	checkInvariants(t, db)
}

// A namespace that has never written reads nsdata/0: a record whose ID
// reads 0 must not read or write it as its own.
func TestZeroNamespaceIDHasNoData(t *testing.T) {
	root := t.TempDir()
	db, err := Open(root, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.bolt.View(func(tx *bolt.Tx) error {
		nsb := namespacesBucket(tx).Bucket([]byte(defaultNamespace))
		if data := nsDataIfAny(nsb); data != nil {
			t.Errorf("a namespace that never wrote has data of its own")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := db.bolt.Update(func(tx *bolt.Tx) error {
		nsb := namespacesBucket(tx).Bucket([]byte(defaultNamespace))
		if err := putUint64(nsb, keyID, 0); err != nil {
			return err
		}
		if data := nsDataIfAny(nsb); data != nil {
			t.Errorf("a record with ID 0 takes nsdata/0 as its data")
		}
		if data := nsData(nsb); data != nil {
			t.Errorf("a write to a record with ID 0 gets a data bucket")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// storeWithImage makes a store at a new root whose namespace default holds
// the image app:v1 and whose namespace other never wrote (each name of
// extra is made too), closes it, and returns the root.
func storeWithImage(t *testing.T, extra ...string) string {
	t.Helper()
	root := t.TempDir()
	db, err := Open(root, Options{})
	if err != nil {
		t.Fatal(err)
	}
	img := seedImage(t, db, defaultNamespace, "redis")
	if _, err := db.Images().Put(ImageWrite{Namespace: defaultNamespace, Ref: "app:v1", Manifest: img.manifest}); err != nil {
		t.Fatal(err)
	}
	for _, ns := range extra {
		if _, err := db.Namespaces().Create(ns, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	return root
}

// changeDefaultID gives default's record an unused ID of the sequence, as
// a damaged value would, and returns the ID it had: its data bucket is left
// to no namespace.
func changeDefaultID(t *testing.T, root string) uint64 {
	t.Helper()
	var old uint64
	mutateStore(t, root, func(tx *bolt.Tx) error {
		nsb := namespacesBucket(tx).Bucket([]byte(defaultNamespace))
		old = getUint64(nsb, keyID)
		id, err := nextID(tx)
		if err != nil {
			return err
		}
		return putUint64(nsb, keyID, id)
	})
	return old
}

// assertImages asserts that namespace ns lists exactly the images refs.
func assertImages(t *testing.T, db *DB, ns string, refs ...string) {
	t.Helper()
	imgs, err := db.ListImages(ns)
	if err != nil {
		t.Fatalf("namespace %q: %v", ns, err)
	}
	var got []string
	for _, img := range imgs {
		got = append(got, img.Name)
	}
	if strings.Join(got, " ") != strings.Join(refs, " ") {
		t.Errorf("namespace %q lists %q, want %q", ns, got, refs)
	}
}

// A namespace record whose ID changed names no data bucket and would be
// served empty, its data stranded: the mount refuses the data bucket no
// namespace names, and fsck --repair gives it back to the one namespace
// without data.
func TestChangedNamespaceIDIsRefusedAndRepaired(t *testing.T) {
	root := storeWithImage(t)
	old := changeDefaultID(t, root)
	recoverRefuses(t, root, fmt.Sprintf("data bucket nsdata/%d: belongs to no namespace", old))

	db, rep := repairCleanly(t, root)
	assertImages(t, db, defaultNamespace, "app:v1")
	if nss, err := db.Namespaces().List(); err != nil || len(nss) != 1 {
		t.Errorf("namespaces after the repair: %+v, %v, want default alone (repairs %q)", nss, err, rep.Repairs)
	}
	checkInvariants(t, db)
}

// With two namespaces without data (one never wrote) and one data bucket
// no namespace names, which one lost it is a guess: fsck --repair makes
// the data a namespace of its own, lost-found-<id>, and the store mounts.
func TestRepairGivesAnOrphanDataBucketItsOwnNamespace(t *testing.T) {
	root := storeWithImage(t, "other")
	old := changeDefaultID(t, root)
	recoverRefuses(t, root, fmt.Sprintf("data bucket nsdata/%d: belongs to no namespace", old))

	db, rep := repairCleanly(t, root)
	orphan := fmt.Sprintf("lost-found-%d", old)
	assertImages(t, db, orphan, "app:v1")
	assertImages(t, db, defaultNamespace)
	assertImages(t, db, "other")
	if !strings.Contains(strings.Join(rep.Repairs, "\n"), "no guess") {
		t.Errorf("repairs %q do not say why nothing was adopted", rep.Repairs)
	}
	checkInvariants(t, db)
}

// The namespace an orphan data bucket gets never takes over one that
// already has the name lost-found-<id>.
func TestRepairNeverGivesAnOrphanDataBucketATakenName(t *testing.T) {
	root := storeWithImage(t)
	old := changeDefaultID(t, root)
	taken := fmt.Sprintf("lost-found-%d", old)
	mutateStore(t, root, func(tx *bolt.Tx) error {
		_, err := createNamespace(tx, taken, nil)
		return err
	})
	db, _ := repairCleanly(t, root)
	assertImages(t, db, taken)
	assertImages(t, db, taken+"-2", "app:v1")
	checkInvariants(t, db)
}
