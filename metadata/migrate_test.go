package metadata

import (
	"os"
	"reflect"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	bolt "go.etcd.io/bbolt"
)

// testdata/store-05c230c was written by nsfs at commit 05c230c, the last
// of schema version 1 (nested labels/, blobs/ and missing/ buckets):
// namespaces default, old (labelled team=infra; image app:v1 labelled
// owner=ops, its layer's hold labelled kind=layer; image partial:v1,
// which misses its layer) and other (labelled shareable; holds
// partial:v1's config).
const v2MissingLayer = "a layer that never arrived, version 2"

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
	mutateStore(t, dir, func(tx *bolt.Tx) error {
		return namespacesBucket(tx).Bucket([]byte("default")).DeleteBucket(bucketImageData)
	})
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

// testdata/store-2154706 was written through this package at commit
// 2154706, the last of schema version 2 (v1/namespaces/<name>/, the ID
// sequence on v1/): namespaces default (empty), old (owned by 1000:1000
// 0750, quota 1M, labelled team=infra; image registry.local/app:v1
// labelled owner=ops, its layer's hold labelled kind=layer; image
// partial:v1, whose config other holds and whose layer never arrived;
// directories empty/ and empty/dir, the times of empty/ set to
// v2DirTime) and other (labelled shareable, sharing isolated); ns/'s
// times set to v2DirTime.
var v2DirTime = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

// A store of schema version 2 is migrated at its first writable open:
// every namespace moves to a top-level bucket of its own, the ID sequence
// and ns/'s times to nsdir/, and everything reads as before.
func TestMigrateSchemaVersion2(t *testing.T) {
	dir := copyDir(t, "testdata/store-2154706")
	var before map[string]Namespace
	var lastID uint64
	{
		db, err := Open(dir, Options{ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		before = namespacesByName(t, db)
		_ = db.bolt.View(func(tx *bolt.Tx) error { lastID = root(tx).Sequence(); return nil })
		db.Close()
	}
	db, err := Open(dir, Options{})
	if err != nil {
		t.Fatalf("open the version 2 store: %v", err)
	}
	defer db.Close()
	_ = db.bolt.View(func(tx *bolt.Tx) error {
		if v := getUint64(root(tx), keyVersion); v != schemaVersion {
			t.Errorf("version after open: %d, want %d", v, schemaVersion)
		}
		if got := idSequence(tx); got != lastID {
			t.Errorf("ID sequence after the migration: %d, want v1/'s %d", got, lastID)
		}
		for name := range before {
			if tx.Bucket(namespaceKey([]byte(name))) == nil {
				t.Errorf("no top-level bucket ns/%s", name)
			}
		}
		return nil
	})
	checkInvariants(t, db)
	if rep := mustCheck(t, db, CheckOptions{VerifyBlobs: true}); len(rep.Problems) != 0 {
		t.Fatalf("fsck of the migrated store:\n%s", problemLines(rep.Problems))
	}
	after := namespacesByName(t, db)
	for name, ns := range before {
		if got := after[name]; !reflect.DeepEqual(got, ns) {
			t.Errorf("namespace %s after the migration:\n%+v\nwant\n%+v", name, got, ns)
		}
	}
	if old := after["old"]; old.Owner != (Owner{1000, 1000, 0o750}) || old.Quota != 1<<20 || old.Labels["team"] != "infra" {
		t.Errorf("old after the migration: %+v", old)
	}
	for _, c := range []struct {
		o          Object
		key, value string
	}{
		{Object{Namespace: "old"}, "team", "infra"},
		{Object{Namespace: "old", Image: "registry.local/app:v1"}, "owner", "ops"},
		{Object{Namespace: "other"}, ShareableLabel, "true"},
	} {
		if got, err := db.Labels().Get(c.o, c.key); err != nil || got != c.value {
			t.Errorf("label %s of %s: %q, %v; want %q", c.key, c.o, got, err, c.value)
		}
	}
	if times, ok, err := db.DirTimes("", ""); err != nil || !ok || !times.Modified.Equal(v2DirTime) {
		t.Errorf("ns/'s times: %+v, %v, %v; want mtime %v", times, ok, err, v2DirTime)
	}
	if times, _, err := db.DirTimes("old", ImagesDir("empty")); err != nil || !times.Modified.Equal(v2DirTime) {
		t.Errorf("old's images/empty times: %+v, %v; want mtime %v", times, err, v2DirTime)
	}
	if entries, err := db.Images().ReadDir("old", "empty"); err != nil || len(entries) != 1 || entries[0].Path != "empty/dir" {
		t.Errorf("ls old/images/empty: %+v, %v", entries, err)
	}
	// IDs go on from the sequence: a new namespace and a new image take
	// IDs no migrated object has.
	ns, err := db.Namespaces().Create("new", nil)
	if err != nil || ns.ID != lastID+1 {
		t.Errorf("new namespace: ID %d, %v; want %d", ns.ID, err, lastID+1)
	}
	layer := mustWriteBlob(t, db, "old", []byte(v2MissingLayer))
	if b, err := db.GetBlob("old", layer.Digest); err != nil || !b.InUse {
		t.Errorf("the missing layer once written: %+v, %v; want claimed by partial:v1", b, err)
	}
	if err := db.Images().Delete("old", "registry.local/app:v1"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Namespaces().Delete("default"); err != nil {
		t.Fatal(err)
	}
	checkInvariants(t, db)
	db.Close()
	if db, err = Open(dir, Options{}); err != nil {
		t.Fatalf("open again: %v", err)
	}
	checkInvariants(t, db)
	if rep := mustCheck(t, db, CheckOptions{VerifyBlobs: true}); len(rep.Problems) != 0 {
		t.Fatalf("fsck after the changes:\n%s", problemLines(rep.Problems))
	}
}

// nsfs fsck (read-only) of a version 2 store reads it unmigrated and finds
// nothing wrong; the file is not written.
func TestCheckSchemaVersion2ReadOnly(t *testing.T) {
	dir := copyDir(t, "testdata/store-2154706")
	before := readFile(t, metaPath(dir))
	db, err := Open(dir, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := db.Check(CheckOptions{VerifyBlobs: true})
	if err != nil || len(rep.Problems) != 0 || rep.Namespaces != 3 || rep.Images != 2 {
		t.Errorf("fsck of the version 2 store: %+v, %v", rep, err)
	}
	if times, ok, err := db.DirTimes("", ""); err != nil || !ok || !times.Modified.Equal(v2DirTime) {
		t.Errorf("ns/'s times, read-only: %+v, %v, %v", times, ok, err)
	}
	db.Close()
	if string(readFile(t, metaPath(dir))) != string(before) {
		t.Errorf("a read-only open changed meta.db")
	}
}

// namespacesByName is every namespace with its labels.
func namespacesByName(t *testing.T, db *DB) map[string]Namespace {
	t.Helper()
	list, err := db.Namespaces().List()
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]Namespace{}
	for _, ns := range list {
		if ns.Labels, err = db.Labels().All(Object{Namespace: ns.Name}); err != nil {
			t.Fatal(err)
		}
		byName[ns.Name] = ns
	}
	return byName
}

// A version 2 namespace without an ID of its own (one lost, one another
// namespace's) takes a new one in the migration and keeps its data: a
// data bucket is named by the ID.
func TestMigrateSchemaVersion2GivesIDs(t *testing.T) {
	dir := copyDir(t, "testdata/store-2154706")
	mutateStore(t, dir, func(tx *bolt.Tx) error {
		all := namespacesBucket(tx)
		if err := all.Bucket([]byte("old")).Delete(keyID); err != nil {
			return err
		}
		return all.Bucket([]byte("other")).Put(keyID, all.Bucket([]byte("default")).Get(keyID))
	})
	db, err := Open(dir, Options{})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	defer db.Close()
	checkInvariants(t, db)
	if rep := mustCheck(t, db, CheckOptions{VerifyBlobs: true}); len(rep.Problems) != 0 {
		t.Fatalf("fsck of the migrated store:\n%s", problemLines(rep.Problems))
	}
	if img, err := db.GetImage("old", "registry.local/app:v1"); err != nil || img.Labels["owner"] != "ops" {
		t.Errorf("old's image after the migration: %+v, %v", img, err)
	}
	if b, err := db.GetBlob("other", digest.FromBytes([]byte(`{"architecture":"amd64","os":"linux","name":"partial"}`))); err != nil || !b.Held {
		t.Errorf("other's blob after the migration: %+v, %v", b, err)
	}
}
