package metadata

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

// Garbage older than the grace goes; younger garbage, a held blob and an
// ingest still being written stay.
func TestCollectGarbage(t *testing.T) {
	db := openTestDB(t, Options{})
	held := mustWriteBlob(t, db, "default", []byte("held"))
	old := time.Now().Add(-2 * time.Hour)
	// Even an old file stays while a record names it.
	if err := os.Chtimes(db.blobs.Path(held.Digest), old, old); err != nil {
		t.Fatal(err)
	}
	orphan := func(data string, mtime time.Time) digest.Digest {
		d := digest.FromString(data)
		if _, err := db.blobs.WriteBytes(d, []byte(data)); err != nil {
			t.Fatal(err)
		}
		if !mtime.IsZero() {
			if err := os.Chtimes(db.blobs.Path(d), mtime, mtime); err != nil {
				t.Fatal(err)
			}
		}
		return d
	}
	oldOrphan, youngOrphan := orphan("old orphan", old), orphan("young orphan", time.Time{})

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
	live, err := db.WriteBlob("default", 0, digest.FromBytes(data))
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
	want := []string{blobFile(oldOrphan), "ingest/" + abandonedName}
	if strings.Join(removed, " ") != strings.Join(want, " ") || stats.Blobs != 1 || stats.Ingests != 1 || stats.Bytes != 10+5 {
		t.Fatalf("removed %v (%d blobs, %d ingests, %d bytes), want %v (1, 1, 15 bytes)", removed, stats.Blobs, stats.Ingests, stats.Bytes, want)
	}
	if fileExists(db, oldOrphan) || !fileExists(db, youngOrphan) || !fileExists(db, held.Digest) {
		t.Fatal("gc removed the wrong blob files")
	}
	// The pull goes on and commits.
	live.Write(data[5:])
	if err := live.Commit(); err != nil {
		t.Fatalf("the ingest being written was collected: %v", err)
	}

	// Without a grace (the store's lock held: no writer), all garbage goes.
	w, err := db.blobs.NewWriter(digest.FromString("unfinished"))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	stats, err = db.CollectGarbage(GCOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if stats.Blobs != 1 || stats.Ingests != 1 || fileExists(db, youngOrphan) || len(ingestNames(t, db)) != 0 {
		t.Fatalf("stats %+v: want the young orphan and the unfinished ingest", stats)
	}
	if rep := mustCheck(t, db, CheckOptions{VerifyBlobs: true}); len(rep.Problems) != 0 {
		t.Fatalf("after gc: %s", problemLines(rep.Problems))
	}
	checkInvariants(t, db)
}

// A blob file a writer is publishing is never collected, however young
// the grace: gc checks for its record under the writer's content lock.
func TestCollectGarbageSparesAPublish(t *testing.T) {
	db := openTestDB(t, Options{})
	data := []byte("racing")
	d := digest.FromBytes(data)
	for i := 0; i < 50; i++ {
		w, err := db.WriteBlob("default", 0, d)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(data)
		done := make(chan error, 1)
		go func() { done <- w.Commit() }()
		var stats GCStats
		if err := db.collectBlobs(time.Time{}, &stats); err != nil {
			t.Fatal(err)
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if stats.Blobs != 0 || !fileExists(db, d) {
			t.Fatalf("round %d: gc removed the blob being published", i)
		}
		if err := db.DeleteBlob("default", d); err != nil {
			t.Fatal(err)
		}
		if fileExists(db, d) {
			t.Fatal("the file of a blob no one holds stayed")
		}
	}
}
