package metadata

import (
	"os"
	"testing"

	"github.com/opencontainers/go-digest"
	bolt "go.etcd.io/bbolt"
)

// testdata/store-05c230c was written by nsfs at commit 05c230c, the last
// of schema version 1 (nested labels/, blobs/ and missing/ buckets):
// namespaces default, old (labelled team=infra; image app:v1 labelled
// owner=ops, its layer's hold labelled kind=layer; image partial:v1,
// which misses its layer) and other (labelled shareable; holds
// partial:v1's config).
const (
	v1Layer        = digest.Digest("sha256:5e84865df0c615021b93ea27379f89a138ceea585aac5cb42a4264ccbb26b04d")
	v1MissingLayer = "a layer that never arrived"
)

// A store of schema version 1 is migrated at its first writable open, in
// one transaction: everything reads as before, nothing is nested any more,
// and the incomplete image still completes when its blob arrives.
func TestMigrateSchemaVersion1(t *testing.T) {
	dir := copyDir(t, "testdata/store-05c230c")
	db, err := Open(dir, Options{})
	if err != nil {
		t.Fatalf("open the version 1 store: %v", err)
	}
	defer db.Close()
	_ = db.bolt.View(func(tx *bolt.Tx) error {
		if v := getUint64(root(tx), keyVersion); v != schemaVersion {
			t.Errorf("version after open: %d, want %d", v, schemaVersion)
		}
		return nil
	})
	checkInvariants(t, db) // no nested bucket left where version 2 has none
	if rep := mustCheck(t, db, CheckOptions{VerifyBlobs: true}); len(rep.Problems) != 0 {
		t.Fatalf("fsck of the migrated store:\n%s", problemLines(rep.Problems))
	}
	for _, c := range []struct {
		o          Object
		key, value string
	}{
		{Object{Namespace: "old"}, "team", "infra"},
		{Object{Namespace: "old", Image: "app:v1"}, "owner", "ops"},
		{Object{Namespace: "old", Blob: v1Layer}, "kind", "layer"},
		{Object{Namespace: "other"}, ShareableLabel, "true"},
	} {
		if got, err := db.Labels().Get(c.o, c.key); err != nil || got != c.value {
			t.Errorf("label %s of %s: %q, %v; want %q", c.key, c.o, got, err, c.value)
		}
	}
	app, err := db.GetImage("old", "app:v1")
	if err != nil || app.Labels["owner"] != "ops" {
		t.Fatalf("app:v1 after migration: %+v, %v", app, err)
	}
	if err := db.Content().Delete("old", v1Layer); !IsInUse(err) {
		t.Errorf("rm of app:v1's layer: %v, want ErrInUse (its claim survived)", err)
	}
	layer := mustWriteBlob(t, db, "old", []byte(v1MissingLayer))
	if b, err := db.GetBlob("old", layer.Digest); err != nil || !b.InUse {
		t.Errorf("the missing layer once written: %+v, %v; want claimed by partial:v1", b, err)
	}
	if err := db.Images().Delete("old", "app:v1"); err != nil {
		t.Fatal(err)
	}
	checkInvariants(t, db)
	db.Close()
	if db, err = Open(dir, Options{}); err != nil {
		t.Fatalf("open again: %v", err)
	}
	checkInvariants(t, db)
}

// nsfs fsck (read-only) of a version 1 store reads it unmigrated and finds
// nothing wrong; the file is not written.
func TestCheckSchemaVersion1ReadOnly(t *testing.T) {
	dir := copyDir(t, "testdata/store-05c230c")
	before := readFile(t, metaPath(dir))
	db, err := Open(dir, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := db.Check(CheckOptions{VerifyBlobs: true})
	if err != nil || len(rep.Problems) != 0 {
		t.Errorf("fsck of the version 1 store: %v, %v", problemLines(rep.Problems), err)
	}
	if got, err := db.Labels().Get(Object{Namespace: "old", Image: "app:v1"}, "owner"); err != nil || got != "ops" {
		t.Errorf("image label, read-only: %q, %v", got, err)
	}
	db.Close()
	if string(readFile(t, metaPath(dir))) != string(before) {
		t.Errorf("a read-only open changed meta.db")
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A version 1 store with a namespace that lost its imagedata/ bucket
// opens (the migration leaves the hole to fsck), and fsck --repair
// makes the bucket again.
func TestMigrateSchemaVersion1WithABucketLost(t *testing.T) {
	dir := copyDir(t, "testdata/store-05c230c")
	bdb, err := bolt.Open(dir+"/meta.db", 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := bdb.Update(func(tx *bolt.Tx) error {
		return namespacesBucket(tx).Bucket([]byte("default")).DeleteBucket(bucketImageData)
	}); err != nil {
		t.Fatal(err)
	}
	bdb.Close()
	db, err := Open(dir, Options{})
	if err != nil {
		t.Fatalf("open the version 1 store without default's imagedata/: %v", err)
	}
	defer db.Close()
	if rep := mustCheck(t, db, CheckOptions{}); len(rep.Problems) == 0 {
		t.Fatal("fsck finds nothing missing")
	}
	if _, err := db.Check(CheckOptions{Repair: true}); err != nil {
		t.Fatal(err)
	}
	if rep := mustCheck(t, db, CheckOptions{}); len(rep.Problems) != 0 {
		t.Fatalf("fsck after the repair:\n%s", problemLines(rep.Problems))
	}
}
