package metadata

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nsfs/nsfs/blobs"
	"github.com/opencontainers/go-digest"
	bolt "go.etcd.io/bbolt"
)

// storeWithBlob makes a store at a new root holding one blob in default,
// closes it, and returns the root and the blob.
func storeWithBlob(t *testing.T) (string, digest.Digest) {
	t.Helper()
	root := t.TempDir()
	db, err := Open(root, Options{})
	if err != nil {
		t.Fatal(err)
	}
	d := mustWriteBlob(t, db, defaultNamespace, []byte("kept")).Digest
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	return root, d
}

// A missing, empty or truncated meta.db beside blob files is refused
// with ErrDamaged, and neither meta.db nor the blob file changes.
func TestOpenRefusesLostRecords(t *testing.T) {
	for _, damage := range []string{"missing", "empty", "truncated", "not bbolt"} {
		t.Run(damage, func(t *testing.T) {
			root, d := storeWithBlob(t)
			dbpath := filepath.Join(root, "meta.db")
			switch damage {
			case "missing":
				os.Remove(dbpath)
			case "empty":
				os.Truncate(dbpath, 0)
			case "truncated":
				os.Truncate(dbpath, 3*4096)
			case "not bbolt":
				os.WriteFile(dbpath, []byte(strings.Repeat("junk", 4096)), 0o600)
			}
			before, _ := os.ReadFile(dbpath)
			_, err := Open(root, Options{})
			if !IsDamaged(err) {
				t.Fatalf("Open: %v, want ErrDamaged", err)
			}
			if !strings.Contains(err.Error(), "nsfs fsck --repair --root "+root) {
				t.Errorf("the refusal does not say what to run: %v", err)
			}
			after, _ := os.ReadFile(dbpath)
			if string(before) != string(after) {
				t.Error("the refused Open changed meta.db")
			}
			if _, err := os.Stat(filepath.Join(root, "blobs", "sha256", d.Encoded())); err != nil {
				t.Errorf("the blob file: %v", err)
			}
		})
	}
}

// A new root without blob files is set up as always, also over an empty
// meta.db (a crash while creating it).
func TestOpenSetsUpAnEmptyRoot(t *testing.T) {
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "meta.db"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	db, err := Open(root, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Recover(); err != nil {
		t.Fatalf("Recover of a new store: %v", err)
	}
}

// Recover refuses a blob file no record names and deletes nothing; with
// the intent a crashed writer left, the file is garbage and goes.
func TestRecoverRefusesUnrecordedFiles(t *testing.T) {
	root, kept := storeWithBlob(t)
	stray := digest.FromString("stray")
	path := filepath.Join(root, "blobs", "sha256", stray.Encoded())
	if err := os.WriteFile(path, []byte("stray"), 0o444); err != nil {
		t.Fatal(err)
	}
	db, err := Open(root, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Recover(); !IsDamaged(err) || !strings.Contains(err.Error(), blobs.RelPath(stray)+": no record names it") {
		t.Fatalf("Recover: %v, want ErrDamaged naming %s", err, blobs.RelPath(stray))
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("the refusal removed the unrecorded file: %v", err)
	}
	if err := db.batch(func(tx *bolt.Tx) error { return markUnheld(tx, stray) }); err != nil {
		t.Fatal(err)
	}
	stats, err := db.Recover()
	if err != nil || stats.Blobs != 1 {
		t.Fatalf("Recover with the intent: %+v, %v; want the file collected", stats, err)
	}
	if fileExists(db, stray) || !fileExists(db, kept) {
		t.Fatal("Recover collected the wrong files")
	}
}

// salvageStore of a store whose meta.db is gone makes a new one; the repair
// then adopts every blob file into lost-found, and the store is clean.
func TestSalvageAndAdopt(t *testing.T) {
	root, kept := storeWithBlob(t)
	os.Remove(filepath.Join(root, "meta.db"))
	actions, err := salvageStore(root)
	if err != nil {
		t.Fatalf("salvageStore: %v (%v)", err, actions)
	}
	db, err := Open(root, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rep, err := db.Check(CheckOptions{Repair: true})
	if err != nil || len(rep.Remaining) != 0 {
		t.Fatalf("repair after salvage: %v, remaining %v", err, rep.Remaining)
	}
	b, err := db.GetBlob(lostFoundNamespace, kept)
	if err != nil || !b.Held {
		t.Fatalf("the blob in %s: %+v, %v", lostFoundNamespace, b, err)
	}
	checkInvariants(t, db)
}

// A v1/ bucket whose name was damaged is refused, never replaced by a new,
// empty schema (which would serve an empty store); salvageStore takes the one
// other top bucket for it, and the namespaces come back.
func TestRenamedV1IsRefusedAndSalvaged(t *testing.T) {
	root, kept := storeWithBlob(t)
	// Rename v1 -> v3 by copying, as a flipped bit in its key would.
	mutateStore(t, root, func(tx *bolt.Tx) error {
		v3, err := tx.CreateBucket([]byte("v3"))
		if err != nil {
			return err
		}
		salvageBucket(tx.Bucket(bucketV1), v3, "v1", func(string, ...any) {})
		return tx.DeleteBucket(bucketV1)
	})
	if _, err := Open(root, Options{}); !IsDamaged(err) {
		t.Fatalf("Open of a store whose v1/ lost its name: %v, want ErrDamaged", err)
	}
	if _, err := salvageStore(root); err != nil {
		t.Fatal(err)
	}
	db, err := Open(root, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if b, err := db.GetBlob(defaultNamespace, kept); err != nil || !b.Held {
		t.Fatalf("after the salvage, default's blob: %+v, %v", b, err)
	}
}

// A damaged page loses only the records on it: salvageStore copies the rest,
// bucket by bucket, and the repair keeps every image whose records were
// elsewhere (here: namespace a's, when b's images/ page is zeroed).
func TestSalvageKeepsTheUndamagedRecords(t *testing.T) {
	root := t.TempDir()
	db, err := Open(root, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, ns := range []string{"a", "b"} {
		if _, err := db.Namespaces().Create(ns, nil); err != nil {
			t.Fatal(err)
		}
		img := seedImage(t, db, ns, "app-"+ns)
		// Enough refs that b's images/ has a page of its own.
		for i := 0; i < 60; i++ {
			ref := fmt.Sprintf("registry.example/%s/app:%03d-%s", ns, i, strings.Repeat("x", 40))
			if _, err := db.Images().Put(ImageWrite{Namespace: ns, Ref: ref, Manifest: img.manifest}); err != nil {
				t.Fatal(err)
			}
		}
	}
	var page uint64
	if err := db.bolt.View(func(tx *bolt.Tx) error {
		page = uint64(nsSub(namespacesBucket(tx).Bucket([]byte("b")), bucketImages).Root())
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if page == 0 {
		t.Fatal("b's images/ is inline: no page to damage")
	}
	f, err := os.OpenFile(filepath.Join(root, "meta.db"), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(make([]byte, 4096), int64(page)*4096); err != nil {
		t.Fatal(err)
	}
	f.Close()

	if _, err := Open(root, Options{}); !IsDamaged(err) {
		t.Fatalf("Open of a zeroed page: %v, want ErrDamaged", err)
	}
	actions, err := salvageStore(root)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(strings.Join(actions, "\n"), "no record could be read") {
		t.Fatalf("salvageStore read nothing:\n%s", strings.Join(actions, "\n"))
	}
	db, err = Open(root, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Check(CheckOptions{Repair: true}); err != nil {
		t.Fatal(err)
	}
	if images, err := db.ListImages("a"); err != nil || len(images) != 60 {
		t.Fatalf("a's images after the salvage: %d, %v; want all 60", len(images), err)
	}
	checkInvariants(t, db)
}

// Repair repairs a copy: the meta.db it started from stays beside the new
// one, and a clean store is left alone.
func TestRepairWorksOnACopy(t *testing.T) {
	root, kept := storeWithBlob(t)
	rep, err := Repair(root, CheckOptions{})
	if err != nil || len(rep.Problems) != 0 || len(rep.Repairs) != 0 {
		t.Fatalf("Repair of a clean store: %+v, %v", rep, err)
	}
	if matches, _ := filepath.Glob(filepath.Join(root, "meta.db.before-repair-*")); len(matches) != 0 {
		t.Fatalf("a clean store was copied: %v", matches)
	}
	if err := os.Remove(filepath.Join(root, "blobs", "sha256", kept.Encoded())); err != nil {
		t.Fatal(err)
	}
	rep, err = Repair(root, CheckOptions{})
	if err != nil || len(rep.Problems) == 0 || !rep.Clean() {
		t.Fatalf("Repair: %+v, %v", rep, err)
	}
	if matches, _ := filepath.Glob(filepath.Join(root, "meta.db.before-repair-*")); len(matches) != 1 {
		t.Fatalf("the meta.db the repair started from: %v, want one copy", matches)
	}
	db, err := Open(root, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if rep := mustCheck(t, db, CheckOptions{VerifyBlobs: true}); len(rep.Problems) != 0 {
		t.Fatalf("after Repair: %s", problemLines(rep.Problems))
	}
}

// A branch page whose key no longer bounds its child (one byte changed):
// bbolt, rebuilding the free page list of a store written without one,
// panics on it inside Open. Open refuses the store as damaged first, and
// a salvage reads every record back, the keys of the leaves being sound.
func TestOpenRefusesABranchKeyOutOfPlace(t *testing.T) {
	root := t.TempDir()
	db, err := Open(root, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Namespaces().Create("b", nil); err != nil {
		t.Fatal(err)
	}
	img := seedImage(t, db, "b", "app")
	const refs = 400
	for i := 0; i < refs; i++ {
		ref := fmt.Sprintf("registry.example/app:%03d-%s", i, strings.Repeat("x", 40))
		if _, err := db.Images().Put(ImageWrite{Namespace: "b", Ref: ref, Manifest: img.manifest}); err != nil {
			t.Fatal(err)
		}
	}
	before, err := db.ListImages("b")
	if err != nil || len(before) < refs {
		t.Fatalf("b's images: %d, %v", len(before), err)
	}
	var page uint64
	if err := db.bolt.View(func(tx *bolt.Tx) error {
		page = uint64(nsSub(namespacesBucket(tx).Bucket([]byte("b")), bucketImages).Root())
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	path := filepath.Join(root, "meta.db")
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	if _, err := f.ReadAt(buf, int64(page)*4096); err != nil {
		t.Fatal(err)
	}
	if flags := binary.LittleEndian.Uint16(buf[8:]); flags != rawBranchPage || binary.LittleEndian.Uint16(buf[10:]) < 3 {
		t.Fatalf("images/ of b is no branch page of 3 children or more (flags %#x)", flags)
	}
	key := branchKey(buf, 1)
	key[len(key)-1]++ // after the first key of its child now
	if _, err := f.WriteAt(buf, int64(page)*4096); err != nil {
		t.Fatal(err)
	}
	f.Close()

	if _, err := Open(root, Options{}); !IsDamaged(err) || !strings.Contains(err.Error(), "parent branch") {
		t.Fatalf("Open with a branch key out of place: %v, want ErrDamaged naming the branch", err)
	}
	if _, err := salvageStore(root); err != nil {
		t.Fatal(err)
	}
	db, err = Open(root, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if images, err := db.ListImages("b"); err != nil || len(images) != len(before) {
		t.Fatalf("b's images after the salvage: %d, %v; want all %d", len(images), err, len(before))
	}
	checkInvariants(t, db)
}

// A namespace record that lost its ID is refused at mount; fsck --repair
// gives it back the ID of the one data bucket no namespace names, and with
// it its images and blobs.
func TestRepairGivesALostNamespaceIDItsData(t *testing.T) {
	root, kept := storeWithBlob(t)
	mutateStore(t, root, func(tx *bolt.Tx) error {
		return namespacesBucket(tx).Bucket([]byte(defaultNamespace)).Delete(keyID)
	})
	db, err := Open(root, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Recover(); !IsDamaged(err) {
		t.Errorf("Recover of a namespace without an ID: %v, want ErrDamaged", err)
	}
	db.Close()
	rep, err := Repair(root, CheckOptions{})
	if err != nil || !rep.Clean() {
		t.Fatalf("Repair: %+v, %v", rep, err)
	}
	if db, err = Open(root, Options{}); err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if b, err := db.GetBlob(defaultNamespace, kept); err != nil || !b.Held {
		t.Fatalf("default's blob after the repair: %+v, %v (repairs %q)", b, err, rep.Repairs)
	}
	checkInvariants(t, db)
}
