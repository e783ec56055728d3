package metadata

import (
	"encoding/json"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// layoutEntry names target as ref in an index.json.
func layoutIndexJSON(t *testing.T, entries map[string][]byte) []byte {
	t.Helper()
	var manifests []ocispec.Descriptor
	for ref, m := range entries {
		d := descriptor(ocispec.MediaTypeImageManifest, m)
		d.Annotations = map[string]string{ocispec.AnnotationRefName: ref}
		manifests = append(manifests, d)
	}
	b, err := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": ocispec.MediaTypeImageIndex, "manifests": manifests})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func layoutRefs(t *testing.T, db *DB, ns string) map[string]string {
	t.Helper()
	data, err := db.Layout().Index(ns)
	if err != nil {
		t.Fatalf("Index(%s): %v", ns, err)
	}
	var idx ocispec.Index
	if err := json.Unmarshal(data, &idx); err != nil {
		t.Fatalf("Index(%s) is no index: %v\n%s", ns, err, data)
	}
	refs := map[string]string{}
	for _, d := range idx.Manifests {
		if d.Annotations[AnnotationContainerdName] != d.Annotations[ocispec.AnnotationRefName] {
			t.Errorf("entry %v: the two name annotations differ", d.Annotations)
		}
		refs[d.Annotations[ocispec.AnnotationRefName]] = string(d.Digest)
	}
	return refs
}

// TestLayoutPutIndex: PutIndex creates, replaces and removes refs in one
// transaction, keeps the blobs an image moving between refs still needs,
// and changes nothing when it refuses.
func TestLayoutPutIndex(t *testing.T) {
	db := openTestDB(t, Options{})
	if _, err := db.Namespaces().Create("foo", nil); err != nil {
		t.Fatal(err)
	}
	one, two := seedImage(t, db, "foo", "one"), seedImage(t, db, "foo", "two")
	for ref, m := range map[string][]byte{"a": one.manifest, "b": two.manifest, "c": one.manifest} {
		if _, err := db.Images().Put(ImageWrite{Namespace: "foo", Ref: ref, Manifest: m}); err != nil {
			t.Fatal(err)
		}
	}
	b, _ := db.Images().Stat("foo", "b")

	// A writer of a namespace of this name that was deleted (another ID)
	// changes nothing.
	before := dump(t, db)
	if _, _, err := db.Layout().PutIndex("foo", 1<<40, nil, layoutIndexJSON(t, nil)); !IsNotFound(err) {
		t.Fatalf("PutIndex for another namespace of the name: %v, want ErrNotFound", err)
	}
	if got := dump(t, db); got != before {
		t.Fatal("PutIndex for another namespace of the name changed the store")
	}

	// a: one → two, b unchanged, c removed, d: one (whose other claimants
	// a and c both leave it in the same transaction).
	if _, _, err := db.Layout().PutIndex("foo", 0, nil, layoutIndexJSON(t, map[string][]byte{"a": two.manifest, "b": two.manifest, "d": one.manifest})); err != nil {
		t.Fatalf("PutIndex: %v", err)
	}
	want := map[string]string{"a": string(two.digest), "b": string(two.digest), "d": string(one.digest)}
	if got := layoutRefs(t, db, "foo"); len(got) != 3 || got["a"] != want["a"] || got["b"] != want["b"] || got["d"] != want["d"] {
		t.Errorf("refs after PutIndex: %v, want %v", got, want)
	}
	if b2, _ := db.Images().Stat("foo", "b"); b2.ID != b.ID || !b2.UpdatedAt.Equal(b.UpdatedAt) {
		t.Errorf("image b was rewritten: %+v, was %+v", b2, b)
	}
	checkInvariants(t, db)

	before = dump(t, db)
	for what, data := range map[string][]byte{
		"junk":                   []byte("junk"),
		"a manifest":             one.manifest,
		"an invalid ref":         layoutIndexJSON(t, map[string][]byte{"../x": one.manifest}),
		"the same ref twice":     []byte(`{"schemaVersion":2,"manifests":[` + entryJSON(t, "a", one.manifest) + `,` + entryJSON(t, "a", two.manifest) + `]}`),
		"a namespace never made": nil,
	} {
		ns := "foo"
		if data == nil {
			ns, data = "nope", layoutIndexJSON(t, nil)
		}
		if _, _, err := db.Layout().PutIndex(ns, 0, nil, data); err == nil {
			t.Errorf("PutIndex of %s: succeeded", what)
		}
	}
	if after := dump(t, db); after != before {
		t.Errorf("refused PutIndex calls changed the store")
	}
	// A target the namespace cannot see: that ref is skipped, the rest
	// applies (here: nothing to change).
	skipped, _, err := db.Layout().PutIndex("foo", 0, nil, layoutIndexJSON(t, map[string][]byte{"a": two.manifest, "b": two.manifest, "d": one.manifest, "x": manifestJSON(one.config)}))
	if err != nil || len(skipped) != 1 || skipped[0] != "x" {
		t.Errorf("PutIndex naming a target nobody has: skipped %v, err %v; want x skipped", skipped, err)
	}
	if after := dump(t, db); after != before {
		t.Errorf("a PutIndex that changes nothing but a skipped ref changed the store")
	}

	// An empty index removes every image; the blobs go with them.
	if _, _, err := db.Layout().PutIndex("foo", 0, nil, layoutIndexJSON(t, nil)); err != nil {
		t.Fatal(err)
	}
	if got := layoutRefs(t, db, "foo"); len(got) != 0 {
		t.Errorf("refs after an empty index: %v", got)
	}
	checkInvariants(t, db)
}

func entryJSON(t *testing.T, ref string, m []byte) string {
	d := descriptor(ocispec.MediaTypeImageManifest, m)
	d.Annotations = map[string]string{ocispec.AnnotationRefName: ref}
	b, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestCheckOCILayout(t *testing.T) {
	for _, ok := range []string{`{"imageLayoutVersion":"1.0.0"}`, `{"imageLayoutVersion": "1.0.0"}` + "\n"} {
		if err := CheckOCILayout([]byte(ok)); err != nil {
			t.Errorf("CheckOCILayout(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{``, `{}`, `{"imageLayoutVersion":"2.0.0"}`, `junk`} {
		wantKind(t, "CheckOCILayout("+bad+")", CheckOCILayout([]byte(bad)), IsInvalidArgument, "ErrInvalidArgument")
	}
	if err := CheckOCILayoutPrefix([]byte(`{"imageLayoutVer`)); err != nil {
		t.Errorf("a prefix: %v", err)
	}
	wantKind(t, "a whole document of another version", CheckOCILayoutPrefix([]byte(`{"imageLayoutVersion":"1.1.0"}`)), IsInvalidArgument, "ErrInvalidArgument")
}

// TestLayoutPutIndexBase: measured against the index.json the writer
// read, a write changes only what the writer changed: refs made or
// changed by others since it read stay as they are now.
func TestLayoutPutIndexBase(t *testing.T) {
	db := openTestDB(t, Options{})
	if _, err := db.Namespaces().Create("foo", nil); err != nil {
		t.Fatal(err)
	}
	one, two := seedImage(t, db, "foo", "one"), seedImage(t, db, "foo", "two")
	put := func(ref string, m []byte) {
		t.Helper()
		if _, err := db.Images().Put(ImageWrite{Namespace: "foo", Ref: ref, Manifest: m}); err != nil {
			t.Fatal(err)
		}
	}
	put("a", one.manifest)
	put("b", one.manifest)
	base, err := db.Layout().Index("foo")
	if err != nil {
		t.Fatal(err)
	}
	// Others, after the writer read: e is made, b changes.
	put("e", two.manifest)
	put("b", two.manifest)
	// The writer removes a, keeps b as it read it, adds f.
	if _, _, err := db.Layout().PutIndex("foo", 0, base, layoutIndexJSON(t, map[string][]byte{"b": one.manifest, "f": two.manifest})); err != nil {
		t.Fatalf("PutIndex: %v", err)
	}
	got := layoutRefs(t, db, "foo")
	want := map[string]string{"b": string(two.digest), "e": string(two.digest), "f": string(two.digest)}
	if len(got) != len(want) || got["b"] != want["b"] || got["e"] != want["e"] || got["f"] != want["f"] {
		t.Errorf("refs: %v, want %v", got, want)
	}
	checkInvariants(t, db)
}

// TestLayoutPutIndexSwap: two refs that swap targets in one write keep
// every blob of both.
func TestLayoutPutIndexSwap(t *testing.T) {
	db := openTestDB(t, Options{})
	if _, err := db.Namespaces().Create("foo", nil); err != nil {
		t.Fatal(err)
	}
	one, two := seedImage(t, db, "foo", "one"), seedImage(t, db, "foo", "two")
	for ref, m := range map[string][]byte{"a": one.manifest, "b": two.manifest} {
		if _, err := db.Images().Put(ImageWrite{Namespace: "foo", Ref: ref, Manifest: m}); err != nil {
			t.Fatal(err)
		}
	}
	held := heldDigests(t, db, "foo")
	if _, _, err := db.Layout().PutIndex("foo", 0, nil, layoutIndexJSON(t, map[string][]byte{"a": two.manifest, "b": one.manifest})); err != nil {
		t.Fatalf("PutIndex swapping a and b: %v", err)
	}
	if got := layoutRefs(t, db, "foo"); got["a"] != string(two.digest) || got["b"] != string(one.digest) {
		t.Errorf("refs after the swap: %v", got)
	}
	if got := heldDigests(t, db, "foo"); !equalDigests(got, held) {
		t.Errorf("blobs held after the swap: %v, want %v", got, held)
	}
	checkInvariants(t, db)
}
