package metadata

import (
	"io"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
)

func TestValidateDigest(t *testing.T) {
	good := digest.FromString("x")
	if err := ValidateDigest(good); err != nil {
		t.Fatal(err)
	}
	for _, d := range []digest.Digest{
		"", "sha256:", "sha256:abc", digest.Digest(strings.ToUpper(string(good))),
		digest.Digest("sha256:" + strings.Repeat("A", 64)),
		digest.Digest("sha512:" + strings.Repeat("a", 128)),
		good + "0", "sha256/../" + good[7:],
	} {
		if err := ValidateDigest(d); !IsInvalidArgument(err) {
			t.Errorf("ValidateDigest(%q) = %v", d, err)
		}
	}
}

func TestWriteBlob(t *testing.T) {
	db := openTestDB(t, Options{})
	data := []byte("hello blob")
	d := digest.FromBytes(data)
	w, err := db.Content().Writer("default", 0, d)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.GetBlob("default", d); !IsNotFound(err) {
		t.Fatalf("a blob being written is visible: %v", err)
	}
	if _, err := w.WriteAt(data[:5], 0); err != nil {
		t.Fatal(err)
	}
	if _, err := w.WriteAt(data[:5], 0); !IsInvalidArgument(err) {
		t.Fatalf("a rewind: %v, want ErrInvalidArgument", err)
	}
	if _, err := w.Write(data[5:]); err != nil {
		t.Fatal(err)
	}
	if w.Size() != int64(len(data)) {
		t.Fatalf("Size %d", w.Size())
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(); err != nil {
		t.Fatalf("second Commit: %v", err)
	}
	if err := w.Abort(); err != nil {
		t.Fatalf("Abort after Commit: %v", err)
	}
	if _, err := w.Write([]byte("more")); err == nil {
		t.Fatal("Write after Commit succeeded")
	}
	b, err := db.GetBlob("default", d)
	if err != nil || b.Size != int64(len(data)) || !b.Held || b.InUse || b.CreatedAt.IsZero() {
		t.Fatalf("GetBlob: %+v %v", b, err)
	}
	f, err := db.Content().Open("default", d)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(f)
	f.Close()
	if string(got) != string(data) {
		t.Fatalf("read back %q", got)
	}
	if _, err := db.Content().Writer("default", 0, d); !IsExists(err) {
		t.Fatalf("ContentStore.Writer of a held blob: %v, want ErrExists", err)
	}
	// Shared policy: another namespace sees it without holding it.
	if _, err := db.Namespaces().Create("foo", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Content().Writer("foo", 0, d); !IsExists(err) {
		t.Fatalf("ContentStore.Writer of a visible blob in foo: %v, want ErrExists", err)
	}
	fb, err := db.GetBlob("foo", d)
	if err != nil || fb.Held || fb.Size != int64(len(data)) {
		t.Fatalf("foo's view: %+v %v", fb, err)
	}
	if list, _ := db.Content().List("foo"); len(list) != 0 {
		t.Fatalf("foo lists blobs it does not hold: %+v", list)
	}
	wantKind(t, "foo deletes a blob it does not hold", db.Content().Delete("foo", d), IsNotFound, "ErrNotFound")

	_, err = db.Content().Writer("nope", 0, d)
	wantKind(t, "write into a missing namespace", err, IsNotFound, "ErrNotFound")
	_, err = db.Content().Writer("default", 0, "sha256:abc")
	wantKind(t, "write a bad digest", err, IsInvalidArgument, "ErrInvalidArgument")
	_, err = db.GetBlob("default", digest.FromString("absent"))
	wantKind(t, "get an absent blob", err, IsNotFound, "ErrNotFound")
	checkInvariants(t, db)
}

func TestWriteBlobDigestMismatch(t *testing.T) {
	db := openTestDB(t, Options{})
	before := dump(t, db)
	want := digest.FromString("the right bytes")
	w, err := db.Content().Writer("default", 0, want)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("the wrong bytes")); err != nil {
		t.Fatal(err)
	}
	err = w.Commit()
	wantKind(t, "commit of wrong bytes", err, IsDigestMismatch, "ErrDigestMismatch")
	got := digest.FromString("the wrong bytes")
	if !strings.Contains(err.Error(), string(want)) || !strings.Contains(err.Error(), string(got)) {
		t.Fatalf("message %q does not name both digests", err)
	}
	if after := dump(t, db); after != before {
		t.Fatalf("a refused ingest left something:\n%s\nthen\n%s", before, after)
	}
}

func TestWriteBlobNamespaceGone(t *testing.T) {
	db := openTestDB(t, Options{})
	if _, err := db.Namespaces().Create("foo", nil); err != nil {
		t.Fatal(err)
	}
	before := dump(t, db)
	data := []byte("orphan to be")
	w, err := db.Content().Writer("foo", 0, digest.FromBytes(data))
	if err != nil {
		t.Fatal(err)
	}
	w.Write(data)
	if _, err := db.Namespaces().Delete("foo"); err != nil {
		t.Fatal(err)
	}
	wantKind(t, "commit into a deleted namespace", w.Commit(), IsNotFound, "ErrNotFound")
	if _, err := db.Namespaces().Create("foo", nil); err != nil {
		t.Fatal(err)
	}
	after := dump(t, db)
	// Only the new namespace's ID and times differ; no file, no record.
	if strings.Count(after, "file ") != strings.Count(before, "file ") || len(blobFiles(t, db)) != 0 {
		t.Fatalf("the published file stayed: %v", blobFiles(t, db))
	}
	checkInvariants(t, db)
}

func TestAbortWriteBlob(t *testing.T) {
	db := openTestDB(t, Options{})
	before := dump(t, db)
	w, err := db.Content().Writer("default", 0, digest.FromString("x"))
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("x"))
	if err := w.Abort(); err != nil {
		t.Fatal(err)
	}
	if after := dump(t, db); after != before {
		t.Fatalf("an aborted ingest left something:\n%s\nthen\n%s", before, after)
	}
}
