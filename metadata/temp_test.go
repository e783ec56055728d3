package metadata

import (
	"errors"
	"testing"

	"github.com/opencontainers/go-digest"
)

// A temporary ingest learns its digest at CommitAs: the wrong one is
// refused and changes nothing (the ingest goes on), the right one commits
// with the labels; committing the bytes of a blob the namespace holds
// changes nothing but the labels it names.
func TestTempWriterCommitAs(t *testing.T) {
	db := openTestDB(t, Options{})
	data := []byte("bytes under a temporary name")
	d := digest.FromBytes(data)
	w, err := db.TempWriter("default", 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.WriteAt(data, 0); err != nil {
		t.Fatal(err)
	}
	before := dump(t, db)
	if err := w.CommitAs(digest.FromString("other"), nil); !errors.Is(err, ErrDigestMismatch) {
		t.Fatalf("CommitAs of another digest: %v, want ErrDigestMismatch", err)
	}
	if err := w.CommitAs("sha256:abc", nil); !IsInvalidArgument(err) {
		t.Fatalf("CommitAs of no digest: %v, want ErrInvalidArgument", err)
	}
	if err := w.CommitAs(d, map[string]string{"": "x"}); !IsInvalidArgument(err) {
		t.Fatalf("CommitAs with an empty label key: %v, want ErrInvalidArgument", err)
	}
	if got := dump(t, db); got != before {
		t.Fatalf("refused commits changed the store:\n%s\nwant\n%s", got, before)
	}
	if w.Removed() {
		t.Fatal("a refused CommitAs ended the ingest")
	}
	if err := w.CommitAs(d, map[string]string{"origin": "rsync"}); err != nil {
		t.Fatal(err)
	}
	b, err := db.GetBlob("default", d)
	if err != nil || !b.Held || b.Size != int64(len(data)) || b.Labels["origin"] != "rsync" {
		t.Fatalf("blob after CommitAs: %+v, %v", b, err)
	}

	// Again, as rsync writes a file it finds changed: the same bytes.
	if err := db.Labels().Set(Object{Namespace: "default", Blob: d}, "kept", "yes", nil); err != nil {
		t.Fatal(err)
	}
	again, err := db.TempWriter("default", 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := again.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := again.CommitAs(d, map[string]string{"origin": "rsync"}); err != nil {
		t.Fatal(err)
	}
	b, err = db.GetBlob("default", d)
	if err != nil || b.Labels["origin"] != "rsync" || b.Labels["kept"] != "yes" {
		t.Fatalf("blob after a second CommitAs: %+v, %v", b, err)
	}
	checkInvariants(t, db)

	// Aborted, or never finished: nothing of it stays but its file, which
	// gc collects.
	left, err := db.TempWriter("default", 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := left.Write(data); err != nil {
		t.Fatal(err)
	}
	stats, err := db.CollectGarbage(GCOptions{})
	if err != nil || stats.Ingests != 1 {
		t.Fatalf("gc: %+v, %v; want the temporary ingest collected", stats, err)
	}
	if !left.Removed() {
		t.Fatal("Removed is false once gc collected the file")
	}
}
