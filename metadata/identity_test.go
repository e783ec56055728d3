package metadata

import (
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
)

// Reserved IDs are distinct, never an ID anything else gets, and never
// handed out again after a reopen.
func TestReserveID(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[uint64]bool{}
	reserve := func() uint64 {
		t.Helper()
		id, err := db.Images().ReserveID()
		if err != nil {
			t.Fatal(err)
		}
		if id == 0 || seen[id] {
			t.Fatalf("ReserveID = %d, handed out before or zero", id)
		}
		seen[id] = true
		return id
	}
	for range idBlock + 5 { // across a block boundary
		reserve()
	}
	ns, err := db.Namespaces().Create("foo", nil)
	if err != nil {
		t.Fatal(err)
	}
	if seen[ns.ID] {
		t.Fatalf("namespace foo got ID %d, which ReserveID handed out", ns.ID)
	}
	img := seedImage(t, db, "foo", "x")
	put, err := db.Images().Put(ImageWrite{Namespace: "foo", Ref: "x", Manifest: img.manifest})
	if err != nil {
		t.Fatal(err)
	}
	if seen[put.ID] {
		t.Fatalf("image x got ID %d, which ReserveID handed out", put.ID)
	}
	seen[ns.ID], seen[put.ID] = true, true
	reserve()
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if db, err = Open(dir, Options{}); err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	reserve()
}

// A write naming an image by ID goes to that image or nowhere: after a
// rename it does not bring the old name back, after a removal or a
// replacement it does not touch what the name holds now.
func TestPutImageByID(t *testing.T) {
	db := openTestDB(t, Options{})
	a := seedImage(t, db, "default", "a")
	b := seedImage(t, db, "default", "b")
	id, err := db.Images().ReserveID()
	if err != nil {
		t.Fatal(err)
	}
	w := ImageWrite{Namespace: "default", Ref: "x", Manifest: a.manifest, ID: id}
	_, err = db.Images().Put(w)
	wantKind(t, "first write without Create", err, IsImageGone, "ErrImageGone")

	w.Create, w.Labels = true, map[string]string{"team": "infra", "empty": ""}
	created, err := db.Images().Put(w)
	if err != nil {
		t.Fatal(err)
	}
	if created.ID != id || created.Labels["team"] != "infra" || len(created.Labels) != 1 {
		t.Fatalf("created image %d with labels %v, want ID %d with team=infra only", created.ID, created.Labels, id)
	}
	w.Create, w.Labels = false, nil
	w.Manifest = b.manifest
	if _, err := db.Images().Put(w); err != nil {
		t.Fatalf("second write of the same image: %v", err)
	}

	if err := db.Images().Rename("default", "x", "default", "y", false); err != nil {
		t.Fatal(err)
	}
	before := dump(t, db)
	_, err = db.Images().Put(w) // still names x
	wantKind(t, "write to the old name after a rename", err, IsImageGone, "ErrImageGone")
	if !IsNotFound(err) || !strings.Contains(err.Error(), `"x"`) {
		t.Errorf("error %q: want an ErrNotFound naming the ref", err)
	}
	w.Create = true // a creation retried under the old name is refused too
	_, err = db.Images().Put(w)
	wantKind(t, "create under the old name after a rename", err, IsImageGone, "ErrImageGone")
	if after := dump(t, db); after != before {
		t.Fatalf("a refused write changed the store:\n%s\nthen\n%s", before, after)
	}
	w.Create, w.Ref = false, "y"
	if got, err := db.Images().Put(w); err != nil || got.ID != id {
		t.Fatalf("write to the new name: %v, ID %d", err, got.ID)
	}

	// y replaced by another image: the writer of the old one is refused.
	c := seedImage(t, db, "default", "c")
	if _, err := db.Images().Put(ImageWrite{Namespace: "default", Ref: "z", Manifest: c.manifest}); err != nil {
		t.Fatal(err)
	}
	if err := db.Images().Rename("default", "z", "default", "y", false); err != nil {
		t.Fatal(err)
	}
	_, err = db.Images().Put(w)
	wantKind(t, "write to a replaced image", err, IsImageGone, "ErrImageGone")
	if got, _ := db.GetImage("default", "y"); got.ID == id || got.Target.Digest != c.digest {
		t.Fatalf("y is %d with %s after a refused write, want the replacing image with %s", got.ID, got.Target.Digest, c.digest)
	}

	// Removed: nothing comes back.
	if err := db.Images().Delete("default", "y"); err != nil {
		t.Fatal(err)
	}
	_, err = db.Images().Put(w)
	wantKind(t, "write to a removed image", err, IsImageGone, "ErrImageGone")
	if _, err := db.GetImage("default", "y"); !IsNotFound(err) {
		t.Fatalf("y after a write to the removed image: %v, want ErrNotFound", err)
	}

	_, err = db.Images().Put(ImageWrite{Namespace: "default", Ref: "q", Manifest: a.manifest, ID: 1 << 40, Create: true})
	wantKind(t, "create with an ID never reserved", err, IsInvalidArgument, "ErrInvalidArgument")
	checkInvariants(t, db)
}

// The labels of a new image are checked before anything is written.
func TestPutImageLabelsAreValidated(t *testing.T) {
	db := openTestDB(t, Options{})
	a := seedImage(t, db, "default", "a")
	before := dump(t, db)
	_, err := db.Images().Put(ImageWrite{Namespace: "default", Ref: "x", Manifest: a.manifest, Labels: map[string]string{"k": strings.Repeat("v", MaxLabelSize)}})
	wantKind(t, "ImageStore.Put with a label too large", err, IsLabelTooLarge, "ErrLabelTooLarge")
	_, err = db.Images().Put(ImageWrite{Namespace: "default", Ref: "x", Manifest: a.manifest, Labels: map[string]string{"": "v"}})
	wantKind(t, "ImageStore.Put with an empty label key", err, IsInvalidArgument, "ErrInvalidArgument")
	if after := dump(t, db); after != before {
		t.Fatalf("a refused ImageStore.Put changed the store:\n%s\nthen\n%s", before, after)
	}
}

// A write that began in a namespace never lands in another one of the same
// name (rmdir + mkdir meanwhile).
func TestWritesCheckTheNamespaceID(t *testing.T) {
	db := openTestDB(t, Options{})
	old, err := db.Namespaces().Create("foo", nil)
	if err != nil {
		t.Fatal(err)
	}
	data := []byte("blob of the old foo")
	w, err := db.Content().Writer("foo", old.ID, digest.FromBytes(data))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	deleted, err := db.Namespaces().Delete("foo")
	if err != nil {
		t.Fatal(err)
	}
	if deleted.ID != old.ID {
		t.Fatalf("NamespaceStore.Delete returned ID %d, want %d", deleted.ID, old.ID)
	}
	if _, err := db.Namespaces().Create("foo", nil); err != nil {
		t.Fatal(err)
	}
	img := seedImage(t, db, "default", "x")
	wantKind(t, "commit of a blob into a namespace made again", w.Commit(), IsNotFound, "ErrNotFound")
	if fileExists(db, digest.FromBytes(data)) || len(heldDigests(t, db, "foo")) != 0 {
		t.Fatalf("a refused commit kept the blob")
	}
	before := dump(t, db)
	_, err = db.Content().Writer("foo", old.ID, digest.FromString("other"))
	wantKind(t, "ContentStore.Writer into a namespace made again", err, IsNotFound, "ErrNotFound")
	_, err = db.Images().Put(ImageWrite{Namespace: "foo", NamespaceID: old.ID, Ref: "x", Manifest: img.manifest})
	wantKind(t, "ImageStore.Put into a namespace made again", err, IsNotFound, "ErrNotFound")
	if err == nil || !strings.Contains(err.Error(), `namespace "foo" was deleted`) {
		t.Errorf("error %v: want it to say the namespace was deleted", err)
	}
	if after := dump(t, db); after != before {
		t.Fatalf("refused writes changed the store:\n%s\nthen\n%s", before, after)
	}
	checkInvariants(t, db)
}

func TestRenameAndLinkRules(t *testing.T) {
	db := openTestDB(t, Options{})
	if _, err := db.Namespaces().Create("foo", nil); err != nil {
		t.Fatal(err)
	}
	a := seedImage(t, db, "default", "a")
	for _, ref := range []string{"x", "y", "dir/z"} {
		if _, err := db.Images().Put(ImageWrite{Namespace: "default", Ref: ref, Manifest: a.manifest}); err != nil {
			t.Fatal(err)
		}
	}
	before := dump(t, db)
	wantKind(t, "rename across namespaces", db.Images().Rename("default", "x", "foo", "x", false), IsCrossNamespace, "ErrCrossNamespace")
	_, err := db.Images().Link("default", "x", "foo", "x")
	wantKind(t, "link across namespaces", err, IsCrossNamespace, "ErrCrossNamespace")
	wantKind(t, "rename of a directory", db.Images().Rename("default", "dir", "default", "dir2", false), IsCrossNamespace, "ErrCrossNamespace")
	wantKind(t, "rename onto an image with noReplace", db.Images().Rename("default", "x", "default", "y", true), IsExists, "ErrExists")
	_, err = db.Images().Link("default", "x", "default", "dir")
	wantKind(t, "link onto a directory", err, IsExists, "ErrExists")
	if after := dump(t, db); after != before {
		t.Fatalf("refused renames changed the store:\n%s\nthen\n%s", before, after)
	}
	if err := db.Images().Rename("default", "x", "default", "w", true); err != nil {
		t.Fatalf("rename to a free name with noReplace: %v", err)
	}
	checkInvariants(t, db)
}

// rmdir of blobs/ and blobs/sha256 is metadata's answer.
func TestRemoveBlobDir(t *testing.T) {
	db := openTestDB(t, Options{})
	if err := db.Content().RemoveDir("default"); err != nil {
		t.Fatalf("ContentStore.RemoveDir of an empty blobs/: %v", err)
	}
	wantKind(t, "ContentStore.RemoveDir of a missing namespace", db.Content().RemoveDir("nope"), IsNotFound, "ErrNotFound")
	b := mustWriteBlob(t, db, "default", []byte("held"))
	err := db.Content().RemoveDir("default")
	wantKind(t, "ContentStore.RemoveDir while a blob is held", err, IsNotEmpty, "ErrNotEmpty")
	if !strings.Contains(err.Error(), `blobs/ of namespace "default" is not empty`) {
		t.Errorf("error %q does not say what is not empty", err)
	}
	if err := db.Content().Delete("default", b.Digest); err != nil {
		t.Fatal(err)
	}
	if err := db.Content().RemoveDir("default"); err != nil {
		t.Fatalf("ContentStore.RemoveDir once empty again: %v", err)
	}
}
