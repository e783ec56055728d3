package metadata

import (
	"fmt"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	"github.com/pkg/errors"
	bolt "go.etcd.io/bbolt"
)

func TestValidateLabel(t *testing.T) {
	if err := ValidateLabel("k", strings.Repeat("v", 4095)); err != nil {
		t.Fatalf("4096 bytes: %v", err)
	}
	err := ValidateLabel("k", strings.Repeat("v", 4096))
	wantKind(t, "4097 bytes", err, IsLabelTooLarge, "ErrLabelTooLarge")
	if want := "label key and value length (4097 bytes) greater than maximum size (4096 bytes)"; !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("message %q, want it to start with %q", err, want)
	}
	wantKind(t, "empty key", ValidateLabel("", "v"), IsInvalidArgument, "ErrInvalidArgument")
}

func TestNamespaceLabels(t *testing.T) {
	db := openTestDB(t, Options{})
	ns := Object{Namespace: "default"}
	before, _ := db.GetNamespace("default")

	if err := db.Labels().Set(ns, "team", "a", nil); err != nil {
		t.Fatal(err)
	}
	if err := db.Labels().Set(ns, "big", strings.Repeat("v", 4096-3), nil); err != nil {
		t.Fatalf("a label of exactly 4096 bytes: %v", err)
	}
	err := db.Labels().Set(ns, "big", strings.Repeat("v", 4096-2), nil)
	wantKind(t, "a label of 4097 bytes", err, IsLabelTooLarge, "ErrLabelTooLarge")
	wantKind(t, "empty key", db.Labels().Set(ns, "", "v", nil), IsInvalidArgument, "ErrInvalidArgument")

	labels, err := db.Labels().All(ns)
	if err != nil {
		t.Fatal(err)
	}
	if labels["team"] != "a" || len(labels["big"]) != 4093 || len(labels) != 2 {
		t.Fatalf("labels %v", labels)
	}
	after, _ := db.GetNamespace("default")
	if !after.UpdatedAt.After(before.UpdatedAt) {
		t.Fatalf("setting a label did not bump updatedat: %v then %v", before.UpdatedAt, after.UpdatedAt)
	}

	// setxattr's flags: the callback sees whether the label exists, inside
	// the transaction, and its error comes back as is.
	errCreate := errors.New("exists (XATTR_CREATE)")
	errReplace := errors.New("absent (XATTR_REPLACE)")
	create := func(exists bool) error {
		if exists {
			return errCreate
		}
		return nil
	}
	replace := func(exists bool) error {
		if !exists {
			return errReplace
		}
		return nil
	}
	if err := db.Labels().Set(ns, "team", "b", create); err != errCreate {
		t.Fatalf("XATTR_CREATE on an existing label: %v", err)
	}
	if err := db.Labels().Set(ns, "new", "x", replace); err != errReplace {
		t.Fatalf("XATTR_REPLACE on an absent label: %v", err)
	}
	if err := db.Labels().Set(ns, "team", "b", replace); err != nil {
		t.Fatal(err)
	}
	// An empty value removes; the check applies first.
	if err := db.Labels().Set(ns, "team", "", create); err != errCreate {
		t.Fatalf("empty value with XATTR_CREATE on an existing label: %v", err)
	}
	if err := db.Labels().Set(ns, "team", "", nil); err != nil {
		t.Fatal(err)
	}
	if err := db.Labels().Set(ns, "never", "", nil); err != nil {
		t.Fatalf("empty value of an absent label: %v", err)
	}
	labels, _ = db.Labels().All(ns)
	if _, ok := labels["team"]; ok || len(labels) != 1 {
		t.Fatalf("after removing team by an empty value: %v", labels)
	}
	if _, ok := labels["new"]; ok {
		t.Fatal("a refused XATTR_REPLACE set the label anyway")
	}

	if err := db.Labels().Remove(ns, "big"); err != nil {
		t.Fatal(err)
	}
	err = db.Labels().Remove(ns, "big")
	wantKind(t, "remove an absent label", err, IsNoLabel, "ErrNoLabel")
	if !strings.Contains(err.Error(), `"big"`) || !strings.Contains(err.Error(), `"default"`) {
		t.Fatalf("message %q does not name the label and the namespace", err)
	}
	_, err = db.Labels().All(Object{Namespace: "nope"})
	wantKind(t, "labels of a missing namespace", err, IsNotFound, "ErrNotFound")
	wantKind(t, "set on a missing namespace", db.Labels().Set(Object{Namespace: "nope"}, "k", "v", nil), IsNotFound, "ErrNotFound")
}

func TestImageAndBlobLabels(t *testing.T) {
	db := openTestDB(t, Options{})
	img := seedImage(t, db, "default", "x")
	put, err := db.Images().Put(ImageWrite{Namespace: "default", Ref: "x", Manifest: img.manifest})
	if err != nil {
		t.Fatal(err)
	}
	io := Object{Namespace: "default", Image: "x"}
	if err := db.Labels().Set(io, "containerd.io/gc.ref", "y", nil); err != nil {
		t.Fatal(err)
	}
	got, _ := db.GetImage("default", "x")
	// A label change is a ctime change: the mtime stays.
	if got.Labels["containerd.io/gc.ref"] != "y" || !got.ChangedAt.After(put.UpdatedAt) || !got.UpdatedAt.Equal(put.UpdatedAt) {
		t.Fatalf("image after LabelStore.Set: %+v", got)
	}
	// Replacing the image's target keeps its labels, as a file keeps its
	// xattrs across truncate and write.
	if _, err := db.Images().Put(ImageWrite{Namespace: "default", Ref: "x", Manifest: img.manifest}); err != nil {
		t.Fatal(err)
	}
	if labels, _ := db.Labels().All(io); labels["containerd.io/gc.ref"] != "y" {
		t.Fatalf("labels after replace: %v", labels)
	}
	wantKind(t, "label of a missing image", db.Labels().Set(Object{Namespace: "default", Image: "nope"}, "k", "v", nil), IsNotFound, "ErrNotFound")

	bo := Object{Namespace: "default", Blob: img.layer.Digest}
	if err := db.Labels().Set(bo, "containerd.io/uncompressed", "sha256:abc", nil); err != nil {
		t.Fatal(err)
	}
	b, err := db.GetBlob("default", img.layer.Digest)
	if err != nil {
		t.Fatal(err)
	}
	if b.Labels["containerd.io/uncompressed"] != "sha256:abc" {
		t.Fatalf("blob labels %v", b.Labels)
	}

	// Content labels are per namespace: foo sees the blob (shared) but does
	// not hold it, so it has no labels; setting one makes foo hold it.
	if _, err := db.Namespaces().Create("foo", nil); err != nil {
		t.Fatal(err)
	}
	fo := Object{Namespace: "foo", Blob: img.layer.Digest}
	labels, err := db.Labels().All(fo)
	if err != nil || len(labels) != 0 {
		t.Fatalf("labels of a visible blob foo does not hold: %v, %v", labels, err)
	}
	wantKind(t, "remove a label of a blob foo does not hold", db.Labels().Remove(fo, "k"), IsNoLabel, "ErrNoLabel")
	if err := db.Labels().Set(fo, "k", "v", nil); err != nil {
		t.Fatalf("set a label on a blob foo can see: %v", err)
	}
	if b, err := db.GetBlob("foo", img.layer.Digest); err != nil || !b.Held || b.InUse || b.Labels["k"] != "v" {
		t.Fatalf("the blob foo labelled: %+v %v, want held, unclaimed, labelled", b, err)
	}
	checkInvariants(t, db)
	// Once foo claims it through an image, the labels are foo's own.
	if _, err := db.Images().Put(ImageWrite{Namespace: "foo", Ref: "x", Manifest: img.manifest}); err != nil {
		t.Fatal(err)
	}
	if err := db.Labels().Set(fo, "k", "foo's", nil); err != nil {
		t.Fatal(err)
	}
	fl, _ := db.Labels().All(fo)
	dl, _ := db.Labels().All(bo)
	if fl["k"] != "foo's" || len(fl) != 1 || dl["k"] != "" {
		t.Fatalf("per-namespace content labels leaked: foo %v, default %v", fl, dl)
	}

	absent := Object{Namespace: "default", Blob: digest.FromString("nobody has this")}
	_, err = db.Labels().All(absent)
	wantKind(t, "labels of an absent blob", err, IsNotFound, "ErrNotFound")
	_, err = db.Labels().All(Object{Namespace: "default", Blob: "sha256:XYZ"})
	wantKind(t, "labels of a bad digest", err, IsInvalidArgument, "ErrInvalidArgument")
}

// fullLabels are 16 labels of LabelSize 4096 each: exactly MaxLabelsSize.
func fullLabels() map[string]string {
	labels := map[string]string{}
	for i := 0; i < 16; i++ {
		labels[fmt.Sprintf("k%02d", i)] = strings.Repeat("v", 4096-3-6)
	}
	return labels
}

// The labels of one object are bounded in sum, so that listxattr always
// fits in 64 KiB: each of a namespace, an image and a blob hold takes
// exactly MaxLabelsSize, the next label is ErrLabelsFull naming the object
// and the limit, nothing changes, and removing or shrinking is taken.
func TestLabelsOfOneObjectAreBounded(t *testing.T) {
	db := openTestDB(t, Options{})
	img := seedImage(t, db, "default", "x")
	if _, err := db.Images().Put(ImageWrite{Namespace: "default", Ref: "app", Manifest: img.manifest}); err != nil {
		t.Fatal(err)
	}
	for _, o := range []Object{
		{Namespace: "default"},
		{Namespace: "default", Image: "app"},
		{Namespace: "default", Blob: img.layer.Digest},
	} {
		for k, v := range fullLabels() {
			if err := db.Labels().Set(o, k, v, nil); err != nil {
				t.Fatalf("%s: label %s of a full set: %v", o, k, err)
			}
		}
		labels, _ := db.Labels().All(o)
		if n := LabelsSize(labels); n != MaxLabelsSize {
			t.Fatalf("%s: labels of %d bytes, want %d", o, n, MaxLabelsSize)
		}
		before := dump(t, db)
		err := db.Labels().Set(o, "x", "1", nil)
		wantKind(t, o.String()+": one more label", err, IsLabelsFull, "ErrLabelsFull")
		if want := o.String() + ": its labels would take 65544 bytes, over the limit of 65536"; !strings.Contains(err.Error(), want) {
			t.Errorf("message %q, want it to say %q", err, want)
		}
		err = db.Labels().Set(o, "k00", labels["k00"]+"v", nil)
		wantKind(t, o.String()+": a longer value", err, IsLabelsFull, "ErrLabelsFull")
		if after := dump(t, db); after != before {
			t.Fatalf("%s: a refused label changed the store", o)
		}
		// The same value again, a shorter one, a removal: all fit.
		if err := db.Labels().Set(o, "k00", labels["k00"], nil); err != nil {
			t.Errorf("%s: the same value again: %v", o, err)
		}
		if err := db.Labels().Set(o, "k00", "short", nil); err != nil {
			t.Errorf("%s: a shorter value: %v", o, err)
		}
		if err := db.Labels().Set(o, "x", "1", nil); err != nil {
			t.Errorf("%s: a label in the room the shorter value made: %v", o, err)
		}
		if err := db.Labels().Remove(o, "k01"); err != nil {
			t.Errorf("%s: a removal: %v", o, err)
		}
	}
}

// Labels set in bulk follow the same rule: a namespace created with them,
// an image created with them.
func TestLabelsSetInBulkAreBounded(t *testing.T) {
	db := openTestDB(t, Options{})
	img := seedImage(t, db, "default", "x")
	if _, err := db.Namespaces().Create("full", fullLabels()); err != nil {
		t.Fatalf("a namespace created with labels of exactly the limit: %v", err)
	}
	over := fullLabels()
	over["x"] = "1"
	before := dump(t, db)
	_, err := db.Namespaces().Create("over", over)
	wantKind(t, "a namespace created with labels over the limit", err, IsLabelsFull, "ErrLabelsFull")
	if !strings.Contains(err.Error(), `namespace "over": its labels would take 65544 bytes`) {
		t.Errorf("message %q does not name the namespace and the size", err)
	}
	_, err = db.Images().Put(ImageWrite{Namespace: "default", Ref: "app", Manifest: img.manifest, Labels: over})
	wantKind(t, "an image created with labels over the limit", err, IsLabelsFull, "ErrLabelsFull")
	if !strings.Contains(err.Error(), `image "app" in namespace "default": its labels would take 65544 bytes`) {
		t.Errorf("message %q does not name the image and the size", err)
	}
	if after := dump(t, db); after != before {
		t.Fatalf("refused labels changed the store")
	}
	// Empty values are no labels and count nothing.
	withEmpty := fullLabels()
	withEmpty["gone"] = ""
	if _, err := db.Images().Put(ImageWrite{Namespace: "default", Ref: "app", Manifest: img.manifest, Labels: withEmpty}); err != nil {
		t.Fatalf("an image created with labels of exactly the limit, and an empty one: %v", err)
	}
	// A tag copies the labels: the copy fits as the original does.
	if _, err := db.Images().Link("default", "app", "default", "app2"); err != nil {
		t.Fatal(err)
	}
}

// Labels over the limit in a store written before it: nothing may grow
// them, but everything that shrinks them is taken.
func TestLabelsOverTheLimitFromBeforeIt(t *testing.T) {
	db := openTestDB(t, Options{})
	ns := Object{Namespace: "default"}
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		nsb, _ := namespaceBucket(tx, "default")
		over := fullLabels()
		over["extra"] = strings.Repeat("e", 1000)
		return writeLabels(nsb, over)
	})
	if err != nil {
		t.Fatal(err)
	}
	wantKind(t, "a new label", db.Labels().Set(ns, "x", "1", nil), IsLabelsFull, "ErrLabelsFull")
	if err := db.Labels().Set(ns, "extra", "shorter", nil); err != nil {
		t.Errorf("a shorter value over the limit: %v", err)
	}
	if err := db.Labels().Set(ns, "k00", "", nil); err != nil {
		t.Errorf("a removal by an empty value: %v", err)
	}
	if err := db.Labels().Remove(ns, "k01"); err != nil {
		t.Errorf("a removal: %v", err)
	}
}

// The limit is decided in the write transaction: of two labels that each
// fit alone but not together, set concurrently, exactly one is taken.
func TestLabelsLimitHoldsUnderConcurrentWriters(t *testing.T) {
	db := openTestDB(t, Options{})
	ns := Object{Namespace: "default"}
	labels := fullLabels()
	delete(labels, "k00")
	delete(labels, "k01")
	for k, v := range labels {
		if err := db.Labels().Set(ns, k, v, nil); err != nil {
			t.Fatal(err)
		}
	}
	// 8192 bytes of room; each of these takes 4100.
	for round := 0; round < 20; round++ {
		a, b := fmt.Sprintf("a%d", round), fmt.Sprintf("b%d", round)
		errs := make(chan error, 2)
		for _, k := range []string{a, b} {
			go func(k string) { errs <- db.Labels().Set(ns, k, strings.Repeat("v", 4100-len(k)-6), nil) }(k)
		}
		var full, ok int
		for i := 0; i < 2; i++ {
			switch err := <-errs; {
			case err == nil:
				ok++
			case IsLabelsFull(err):
				full++
			default:
				t.Fatal(err)
			}
		}
		if ok != 1 || full != 1 {
			t.Fatalf("round %d: %d taken, %d refused; want one of each", round, ok, full)
		}
		got, _ := db.Labels().All(ns)
		if n := LabelsSize(got); n > MaxLabelsSize {
			t.Fatalf("round %d: labels of %d bytes", round, n)
		}
		for _, k := range []string{a, b} {
			_ = db.Labels().Set(ns, k, "", nil)
		}
	}
}
