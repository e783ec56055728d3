package metadata

import (
	"strings"
	"testing"

	"github.com/pkg/errors"
)

// The labels of an image being written obey the rules of LabelStore.Set
// and Remove, with their messages: each change is tried on a stored image and
// on pending labels holding the same labels, and both must agree.
func TestPendingLabelsFollowSetLabel(t *testing.T) {
	db := openTestDB(t, Options{})
	img := seedImage(t, db, "default", "x")
	if _, err := db.Images().Put(ImageWrite{Namespace: "default", Ref: "x", Manifest: img.manifest}); err != nil {
		t.Fatal(err)
	}
	o := Object{Namespace: "default", Image: "x"}
	var p PendingLabels
	errRefused := errors.New("refused by check")
	refuseIf := func(want bool) func(bool) error {
		return func(exists bool) error {
			if exists == want {
				return errRefused
			}
			return nil
		}
	}
	big := strings.Repeat("v", MaxLabelSize-100)
	steps := []struct {
		what       string
		key, value string
		check      func(bool) error
	}{
		{"set", "a", "1", nil},
		{"empty key", "", "1", nil},
		{"one label too large", "b", strings.Repeat("v", MaxLabelSize), nil},
		{"create of an existing label", "a", "2", refuseIf(true)},
		{"replace of a missing label", "c", "2", refuseIf(false)},
		{"replace", "a", "2", refuseIf(false)},
		{"remove by an empty value", "a", "", nil},
		{"remove of a missing label by an empty value", "a", "", nil},
	}
	for i := range MaxLabelsSize / MaxLabelSize {
		steps = append(steps, struct {
			what       string
			key, value string
			check      func(bool) error
		}{"fill", "k" + strings.Repeat("x", i), big, nil})
	}
	steps = append(steps, struct {
		what       string
		key, value string
		check      func(bool) error
	}{"over the limit of all labels", "last", big, nil})
	for _, s := range steps {
		stored := db.Labels().Set(o, s.key, s.value, s.check)
		pending := p.Set(o, s.key, s.value, s.check)
		if !sameError(stored, pending) {
			t.Fatalf("%s: LabelStore.Set says %v, PendingLabels.Set %v", s.what, stored, pending)
		}
		if s.what == "over the limit of all labels" {
			wantKind(t, s.what, pending, IsLabelsFull, "ErrLabelsFull")
		}
	}
	labels, err := db.Labels().All(o)
	if err != nil {
		t.Fatal(err)
	}
	if got := p.Labels(); len(got) != len(labels) || LabelsSize(got) != LabelsSize(labels) {
		t.Fatalf("pending labels %d (%d bytes), stored %d (%d bytes)", len(got), LabelsSize(got), len(labels), LabelsSize(labels))
	}
	for k, v := range labels {
		got, err := p.Label(o, k)
		if err != nil || got != v {
			t.Fatalf("Label(%q) = %q, %v; stored %q", k, got, err, v)
		}
	}
	_, storedErr := db.Labels().Get(o, "missing")
	_, pendingErr := p.Label(o, "missing")
	if !sameError(storedErr, pendingErr) || !IsNoLabel(pendingErr) {
		t.Fatalf("Label of a missing label: stored %v, pending %v", storedErr, pendingErr)
	}
	if stored, pending := db.Labels().Remove(o, "missing"), p.Remove(o, "missing"); !sameError(stored, pending) || !IsNoLabel(pending) {
		t.Fatalf("Remove of a missing label: stored %v, pending %v", stored, pending)
	}
	if err := p.Remove(o, "k"); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Label(o, "k"); !IsNoLabel(err) {
		t.Fatalf("Label after Remove: %v", err)
	}
}

func sameError(a, b error) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Error() == b.Error()
}

// A rename of an image being written (from names nothing in the store)
// frees its new name in one transaction, as a rename replaces its target;
// a rename of a stored image is ImageStore.Rename.
func TestRenamePendingImage(t *testing.T) {
	db := openTestDB(t, Options{})
	img := seedImage(t, db, "default", "y")
	if _, err := db.Images().Put(ImageWrite{Namespace: "default", Ref: "y", Manifest: img.manifest}); err != nil {
		t.Fatal(err)
	}
	stored := seedImage(t, db, "default", "w")
	if _, err := db.Images().Put(ImageWrite{Namespace: "default", Ref: "w", Manifest: stored.manifest}); err != nil {
		t.Fatal(err)
	}
	if err := db.Images().MakeDir("default", "dir"); err != nil {
		t.Fatal(err)
	}
	before := dump(t, db)
	_, err := db.Images().RenamePending("default", "new", "default", "y", true)
	wantKind(t, "onto an image with noReplace", err, IsExists, "ErrExists")
	_, err = db.Images().RenamePending("default", "new", "default", "dir", true)
	wantKind(t, "onto a directory with noReplace", err, IsExists, "ErrExists")
	_, err = db.Images().RenamePending("default", "new", "default", "y/z", true)
	wantKind(t, "below an image with noReplace", err, IsNotDirectory, "ErrNotDirectory")
	_, err = db.Images().RenamePending("default", "new", "default", "dir", false)
	wantKind(t, "onto a directory", err, IsIsDirectory, "ErrIsDirectory")
	_, err = db.Images().RenamePending("default", "new", "other", "y", false)
	wantKind(t, "across namespaces", err, IsCrossNamespace, "ErrCrossNamespace")
	if after := dump(t, db); after != before {
		t.Fatalf("refused renames changed the store:\n%s\nwant\n%s", after, before)
	}

	pending, err := db.Images().RenamePending("default", "new", "default", "free", true)
	if err != nil || !pending {
		t.Fatalf("onto a free name: pending %v, %v", pending, err)
	}
	pending, err = db.Images().RenamePending("default", "new", "default", "y", false)
	if err != nil || !pending {
		t.Fatalf("onto an image: pending %v, %v", pending, err)
	}
	if _, err := db.Images().Stat("default", "y"); !IsNotFound(err) {
		t.Fatalf("the replaced image: %v, want it gone", err)
	}
	for _, d := range heldDigests(t, db, "default") {
		if d == img.digest {
			t.Fatalf("the replaced image's manifest %s is still held", d)
		}
	}
	checkInvariants(t, db)

	pending, err = db.Images().RenamePending("default", "w", "default", "z", false)
	if err != nil || pending {
		t.Fatalf("a stored image: pending %v, %v", pending, err)
	}
	if _, err := db.Images().Stat("default", "z"); err != nil {
		t.Fatalf("the renamed image: %v", err)
	}
	checkInvariants(t, db)
}
