package metadata

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/opencontainers/go-digest"
	bolt "go.etcd.io/bbolt"
)

// shareableCount reads v1/shareable/<d> (0: no key).
func shareableCount(t testing.TB, db *DB, d digest.Digest) uint64 {
	t.Helper()
	var n uint64
	if err := db.bolt.View(func(tx *bolt.Tx) error {
		if sb := shareableBucket(tx); sb != nil {
			n = getUint64(sb, []byte(d))
		} else {
			t.Fatal("no shareable/ bucket")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return n
}

func checkShareable(t testing.TB, db *DB) {
	t.Helper()
	if err := db.bolt.View(checkShareableIndex); err != nil {
		t.Fatal(err)
	}
}

// The index follows holds, drops, label changes and namespace deletion,
// each in its own transaction.
func TestShareableIndexFollowsHoldsAndLabels(t *testing.T) {
	db := openTestDB(t, Options{Sharing: SharingIsolated})
	for _, ns := range []string{"a", "b", "c"} {
		if _, err := db.Namespaces().Create(ns, nil); err != nil {
			t.Fatal(err)
		}
	}
	shareable := func(ns string, on bool) {
		t.Helper()
		value := ""
		if on {
			value = "true"
		}
		if err := db.Labels().Set(Object{Namespace: ns}, ShareableLabel, value, nil); err != nil {
			t.Fatal(err)
		}
		checkShareable(t, db)
	}
	want := func(what string, d digest.Digest, n uint64) {
		t.Helper()
		if got := shareableCount(t, db, d); got != n {
			t.Fatalf("%s: shareable count %d, want %d", what, got, n)
		}
		checkShareable(t, db)
	}
	blob := mustWriteBlob(t, db, "a", []byte("shared bytes")).Digest
	want("a private namespace holds it", blob, 0)
	shareable("a", true)
	want("a, now shareable, holds it", blob, 1)
	if _, err := db.Content().Stat("c", blob); err != nil {
		t.Fatalf("c cannot see a shareable namespace's blob: %v", err)
	}
	// b can see it, so it cannot write it; it holds it by an image.
	img := seedImage(t, db, "b", "img")
	shareable("b", true)
	want("b shareable, holding other blobs", blob, 1)
	want("b's own layer", img.layer.Digest, 1)
	// A shareable namespace that starts holding a blob counts at once.
	other := mustWriteBlob(t, db, "b", []byte("b's later bytes")).Digest
	want("b writes a blob while shareable", other, 1)
	manifest := manifestJSON(descriptor("", []byte("shared bytes")))
	if _, err := db.Images().Put(ImageWrite{Namespace: "b", Ref: "x", Manifest: manifest}); err != nil {
		t.Fatal(err)
	}
	want("b claims a's blob", blob, 2)
	// A label set to another value turns it off, as removing it does.
	if err := db.Labels().Set(Object{Namespace: "a"}, ShareableLabel, "yes", nil); err != nil {
		t.Fatal(err)
	}
	want("a's label is not \"true\" any more", blob, 1)
	if err := db.Labels().Remove(Object{Namespace: "a"}, ShareableLabel); err != nil {
		t.Fatal(err)
	}
	want("a's label removed", blob, 1)
	if err := db.Images().Delete("b", "x"); err != nil {
		t.Fatal(err)
	}
	want("b dropped a's blob", blob, 0)
	if _, err := db.Content().Stat("c", blob); !IsNotFound(err) {
		t.Fatalf("c sees a blob only a private namespace holds: %v", err)
	}
	if err := db.Content().Delete("b", other); err != nil {
		t.Fatal(err)
	}
	want("b dropped its own blob", other, 0)
	// Unrelated labels change nothing.
	if err := db.Labels().Set(Object{Namespace: "b"}, "team", "x", nil); err != nil {
		t.Fatal(err)
	}
	want("an unrelated label", img.layer.Digest, 1)
	// Emptied and deleted, b leaves nothing in the index.
	for _, d := range heldDigests(t, db, "b") {
		if err := db.Content().Delete("b", d); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.Namespaces().Delete("b"); err != nil {
		t.Fatal(err)
	}
	want("b deleted", img.layer.Digest, 0)
	checkInvariants(t, db)
}

// A store from before the index gets it at its first open, counted from
// the holds; a read-only open of such a store (fsck) walks the holders.
func TestShareableIndexIsBuiltForAnOldStore(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(dir, Options{Sharing: SharingIsolated})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Namespaces().Create("pub", map[string]string{ShareableLabel: "true"}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Namespaces().Create("priv", nil); err != nil {
		t.Fatal(err)
	}
	pub := mustWriteBlob(t, db, "pub", []byte("public")).Digest
	priv := mustWriteBlob(t, db, "priv", []byte("private")).Digest
	// As a store written before the index: no shareable/ bucket.
	if err := db.bolt.Update(func(tx *bolt.Tx) error { return root(tx).DeleteBucket(bucketShareable) }); err != nil {
		t.Fatal(err)
	}
	db.Close()

	ro, err := Open(dir, Options{Sharing: SharingIsolated, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ro.Content().Stat("default", pub); err != nil {
		t.Errorf("read-only, without the index: a shareable namespace's blob: %v", err)
	}
	if _, err := ro.Content().Stat("default", priv); !IsNotFound(err) {
		t.Errorf("read-only, without the index: a private namespace's blob: %v", err)
	}
	ro.Close()

	db, err = Open(dir, Options{Sharing: SharingIsolated})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if n := shareableCount(t, db, pub); n != 1 {
		t.Errorf("rebuilt index: %d for the shareable namespace's blob, want 1", n)
	}
	if n := shareableCount(t, db, priv); n != 0 {
		t.Errorf("rebuilt index: %d for the private namespace's blob, want 0", n)
	}
	checkInvariants(t, db)
	// Opening again changes nothing.
	before := dump(t, db)
	db.Close()
	db, err = Open(dir, Options{Sharing: SharingIsolated})
	if err != nil {
		t.Fatal(err)
	}
	if after := dump(t, db); after != before {
		t.Errorf("a second open changed the store")
	}
}

// checkShareableIndex finds a count that is wrong, missing or extra, and
// rebuildShareableIndex cures it.
func TestCheckShareableIndexFindsStaleCounts(t *testing.T) {
	db := openTestDB(t, Options{Sharing: SharingIsolated})
	if _, err := db.Namespaces().Create("pub", map[string]string{ShareableLabel: "true"}); err != nil {
		t.Fatal(err)
	}
	d := mustWriteBlob(t, db, "pub", []byte("public")).Digest
	stray := digest.FromString("nobody holds this")
	for _, damage := range []func(sb *bolt.Bucket) error{
		func(sb *bolt.Bucket) error { return putUint64(sb, []byte(d), 2) },
		func(sb *bolt.Bucket) error { return sb.Delete([]byte(d)) },
		func(sb *bolt.Bucket) error { return putUint64(sb, []byte(stray), 1) },
	} {
		if err := db.bolt.Update(func(tx *bolt.Tx) error { return damage(shareableBucket(tx)) }); err != nil {
			t.Fatal(err)
		}
		if err := db.bolt.View(checkShareableIndex); err == nil {
			t.Fatal("a damaged index passes the check")
		}
		if err := db.bolt.Update(rebuildShareableIndex); err != nil {
			t.Fatal(err)
		}
		checkShareable(t, db)
	}
}

// BenchmarkStatBlobIsolated: the cost of a stat under isolated sharing
// does not grow with the number of (private) holders, and is the same for
// a blob nobody holds. Compare the ns/op of the sub-benchmarks:
//
//	go test -run XXX -bench StatBlobIsolated ./metadata/
func BenchmarkStatBlobIsolated(b *testing.B) {
	db, err := Open(filepath.Join(b.TempDir(), "store"), Options{Sharing: SharingIsolated})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Namespaces().Create("tenant", nil); err != nil {
		b.Fatal(err)
	}
	held := map[int]digest.Digest{}
	for _, holders := range []int{1, 300} {
		data := []byte(fmt.Sprintf("held by %d", holders))
		for i := 0; i < holders; i++ {
			ns := fmt.Sprintf("h%d-%d", holders, i)
			if _, err := db.Namespaces().Create(ns, nil); err != nil {
				b.Fatal(err)
			}
			mustWriteBlob(b, db, ns, data)
		}
		held[holders] = digest.FromBytes(data)
	}
	held[0] = digest.FromString("nobody holds this")
	for _, holders := range []int{0, 1, 300} {
		b.Run(fmt.Sprintf("holders=%d", holders), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				if _, err := db.Content().Stat("tenant", held[holders]); !IsNotFound(err) {
					b.Fatal(err)
				}
			}
		})
	}
}
