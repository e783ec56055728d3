package metadata

import (
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// damageNamespaceRecords opens the closed store at root with bbolt alone and
// lets damage change its records, as a flipped bit in meta.db would.
func damageNamespaceRecords(t *testing.T, root string, damage func(tx *bolt.Tx) error) {
	t.Helper()
	bdb, err := bolt.Open(filepath.Join(root, "meta.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := bdb.Update(damage); err != nil {
		t.Fatal(err)
	}
	if err := bdb.Close(); err != nil {
		t.Fatal(err)
	}
}

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
	damageNamespaceRecords(t, root, func(tx *bolt.Tx) error {
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
