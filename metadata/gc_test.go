package metadata

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nsfs/nsfs/blobs"
	"github.com/opencontainers/go-digest"
	bolt "go.etcd.io/bbolt"
)

// A blob file goes only when a record proves it garbage (its writer's
// intent, or its last holder's tombstone); a file no record names stays
// however old. Ingests go once older than the grace, but one being written
// stays.
func TestCollectGarbage(t *testing.T) {
	db := openTestDB(t, Options{})
	held := mustWriteBlob(t, db, "default", []byte("held"))
	old := time.Now().Add(-2 * time.Hour)
	// Even an old file stays while a record names it.
	if err := os.Chtimes(blobPath(db, held.Digest), old, old); err != nil {
		t.Fatal(err)
	}
	file := func(data string) digest.Digest {
		d := digest.FromString(data)
		if _, err := db.blobs.WriteBytes(d, []byte(data)); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(blobPath(db, d), old, old); err != nil {
			t.Fatal(err)
		}
		return d
	}
	// A crash between a publishing rename and the commit that holds it.
	crashed := file("published, never held")
	if err := db.batch(func(tx *bolt.Tx) error { return markUnheld(tx, crashed) }); err != nil {
		t.Fatal(err)
	}
	// A file no record names: planted, or its meta.db entry lost.
	unrecorded := file("nobody's record")
	// A tombstone whose file was already deleted.
	dropped := mustWriteBlob(t, db, "default", []byte("dropped"))
	if err := db.Content().Delete("default", dropped.Digest); err != nil {
		t.Fatal(err)
	}

	abandoned, err := db.blobs.NewWriter(digest.FromString("abandoned"))
	if err != nil {
		t.Fatal(err)
	}
	defer abandoned.Abort()
	abandoned.Write([]byte("aband"))
	abandonedName := ingestNames(t, db)[0]
	if err := os.Chtimes(db.Root()+"/ingest/"+abandonedName, old, old); err != nil {
		t.Fatal(err)
	}
	// A pull in progress: its ingest was written a moment ago.
	data := []byte("being written")
	live, err := db.Content().Writer("default", 0, digest.FromBytes(data))
	if err != nil {
		t.Fatal(err)
	}
	live.Write(data[:5])

	stats, err := db.CollectGarbage(GCOptions{Grace: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	var removed []string
	for _, g := range stats.Removed {
		removed = append(removed, g.Path)
	}
	want := []string{blobs.RelPath(crashed), "ingest/" + abandonedName}
	if strings.Join(removed, " ") != strings.Join(want, " ") || stats.Blobs != 1 || stats.Ingests != 1 || stats.Bytes != 21+5 {
		t.Fatalf("removed %v (%d blobs, %d ingests, %d bytes), want %v (1, 1, 26 bytes)", removed, stats.Blobs, stats.Ingests, stats.Bytes, want)
	}
	if fileExists(db, crashed) || !fileExists(db, unrecorded) || !fileExists(db, held.Digest) {
		t.Fatal("gc removed the wrong blob files")
	}
	if n := countUnheld(t, db); n != 0 {
		t.Fatalf("%d unheld entries left after gc, want 0", n)
	}
	// The pull goes on and commits.
	live.Write(data[5:])
	if err := live.Commit(); err != nil {
		t.Fatalf("the ingest being written was collected: %v", err)
	}

	// Without a grace (the store's lock held: no writer), every ingest
	// goes; the unrecorded file still stays.
	w, err := db.blobs.NewWriter(digest.FromString("unfinished"))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	stats, err = db.CollectGarbage(GCOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if stats.Blobs != 0 || stats.Ingests != 1 || !fileExists(db, unrecorded) || len(ingestNames(t, db)) != 0 {
		t.Fatalf("stats %+v: want only the unfinished ingest", stats)
	}
}

// countUnheld is the number of unheld/ entries.
func countUnheld(t *testing.T, db *DB) int {
	t.Helper()
	n := 0
	if err := db.bolt.View(func(tx *bolt.Tx) error {
		n = unheldBucket(tx).Stats().KeyN
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return n
}

// A blob file a writer is publishing is never collected, however young
// the grace: gc checks for its record under the writer's content lock.
func TestCollectGarbageSparesAPublish(t *testing.T) {
	db := openTestDB(t, Options{})
	data := []byte("racing")
	d := digest.FromBytes(data)
	for i := 0; i < 50; i++ {
		w, err := db.Content().Writer("default", 0, d)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(data)
		done := make(chan error, 1)
		go func() { done <- w.Commit() }()
		var stats GCStats
		if err := db.collectBlobs(&stats); err != nil {
			t.Fatal(err)
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if stats.Blobs != 0 || !fileExists(db, d) {
			t.Fatalf("round %d: gc removed the blob being published", i)
		}
		if err := db.Content().Delete("default", d); err != nil {
			t.Fatal(err)
		}
		if fileExists(db, d) {
			t.Fatal("the file of a blob no one holds stayed")
		}
	}
}

// An ingest left in the store is a note of Check, no problem: the store
// is clean. RemoveIngests (a clean unmount) removes every ingest, and
// leaves the blobs alone.
func TestLeftIngestIsANoteAndRemoveIngests(t *testing.T) {
	s := newFsckStore(t)
	db := s.db
	for _, what := range []string{"temporary", "scratch"} {
		w, err := db.blobs.NewWriter(digest.FromString(what))
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte(what))
	}
	rep := mustCheck(t, db, CheckOptions{VerifyBlobs: true})
	if !rep.Clean() || len(rep.Problems) != 0 || len(rep.Notes) != 2 {
		t.Fatalf("Check: clean %v, problems %v, notes %v; want clean with 2 notes", rep.Clean(), rep.Problems, rep.Notes)
	}
	if n := rep.Notes[0].String(); !strings.HasPrefix(n, "ingest/") || !strings.Contains(n, ": unfinished ingest (") ||
		!strings.HasSuffix(n, "): no damage; nsfs gc or the next mount removes it") {
		t.Errorf("note %q", n)
	}
	records := func() string { // and blob files: all but the ingests
		var keep []string
		for _, line := range strings.Split(dump(t, db), "\n") {
			if !strings.HasPrefix(line, "ingest ") {
				keep = append(keep, line)
			}
		}
		return strings.Join(keep, "\n")
	}
	before := records()
	stats, err := db.RemoveIngests()
	if err != nil || stats.Ingests != 2 || stats.Blobs != 0 || stats.Bytes != int64(len("temporary")+len("scratch")) {
		t.Fatalf("RemoveIngests: %+v, %v; want the 2 ingests", stats, err)
	}
	if names := ingestNames(t, db); len(names) != 0 {
		t.Fatalf("ingests left: %v", names)
	}
	if after := records(); after != before {
		t.Fatalf("RemoveIngests changed the records or blob files:\n%s\nwant:\n%s", after, before)
	}
	if rep := mustCheck(t, db, CheckOptions{VerifyBlobs: true}); !rep.Clean() || len(rep.Notes) != 0 {
		t.Fatalf("after RemoveIngests: problems %v, notes %v", rep.Problems, rep.Notes)
	}
}

// fsck --repair of a store whose only finding is a left ingest removes
// it, without salvaging meta.db into a copy.
func TestRepairRemovesLeftIngestsOnly(t *testing.T) {
	root := t.TempDir()
	db, err := Open(root, Options{})
	if err != nil {
		t.Fatal(err)
	}
	w, err := db.blobs.NewWriter(digest.FromString("left"))
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("left"))
	name := ingestNames(t, db)[0]
	db.Close()
	rep, err := Repair(root, CheckOptions{VerifyBlobs: true})
	if err != nil || !rep.Clean() || len(rep.Problems) != 0 || len(rep.Notes) != 1 ||
		strings.Join(rep.Repairs, "\n") != "removed unfinished ingest ingest/"+name+" (4 bytes)" {
		t.Fatalf("Repair: %v; problems %v, notes %v, repairs %q", err, rep.Problems, rep.Notes, rep.Repairs)
	}
	if left, _ := filepath.Glob(filepath.Join(root, "ingest", "*")); len(left) != 0 {
		t.Fatalf("ingests left: %v", left)
	}
	if copies, _ := filepath.Glob(filepath.Join(root, "meta.db.*")); len(copies) != 0 {
		t.Fatalf("the repair salvaged meta.db: %v", copies)
	}
}
