package metadata

import (
	"testing"

	"github.com/opencontainers/go-digest"
)

// The Stat variants answer what the Get variants answer, without labels.
func TestStatLeavesLabelsOut(t *testing.T) {
	db := openTestDB(t, Options{})
	img := seedImage(t, db, "default", "x")
	putImages(t, db, "default", img.manifest, []string{"dir/x"})
	for _, o := range []Object{
		{Namespace: "default"},
		{Namespace: "default", Image: "dir/x"},
		{Namespace: "default", Blob: img.layer.Digest},
	} {
		if err := db.Labels().Set(o, "k", "v", nil); err != nil {
			t.Fatal(err)
		}
	}

	gotNS, err := db.GetNamespace("default")
	if err != nil || gotNS.Labels["k"] != "v" {
		t.Fatalf("GetNamespace = %+v, %v; want label k=v", gotNS, err)
	}
	statNS, err := db.Namespaces().Stat("default")
	if err != nil || statNS.Labels != nil {
		t.Fatalf("NamespaceStore.Stat = %+v, %v; want no labels", statNS, err)
	}
	if statNS.Labels = gotNS.Labels; statNS.ID == 0 || !equalNamespaces(statNS, gotNS) {
		t.Fatalf("NamespaceStore.Stat = %+v, GetNamespace = %+v", statNS, gotNS)
	}
	list, err := db.Namespaces().List()
	if err != nil || len(list) != 1 || list[0].Labels != nil || list[0].ID != gotNS.ID {
		t.Fatalf("NamespaceStore.List = %+v, %v; want default without labels", list, err)
	}

	gotImg, err := db.GetImage("default", "dir/x")
	if err != nil || gotImg.Labels["k"] != "v" {
		t.Fatalf("GetImage = %+v, %v; want label k=v", gotImg, err)
	}
	statImg, err := db.Images().Stat("default", "dir/x")
	if err != nil || statImg.Labels != nil {
		t.Fatalf("ImageStore.Stat = %+v, %v; want no labels", statImg, err)
	}
	if statImg.ID != gotImg.ID || statImg.Target.Digest != img.digest || !statImg.UpdatedAt.Equal(gotImg.UpdatedAt) {
		t.Fatalf("ImageStore.Stat = %+v, GetImage = %+v", statImg, gotImg)
	}
	e, err := db.Images().Lookup("default", "dir/x")
	if err != nil || e.Image == nil || e.Image.ID != gotImg.ID || e.Image.Labels != nil {
		t.Fatalf("ImageStore.Lookup = %+v, %v; want image %d without labels", e, err, gotImg.ID)
	}

	gotBlob, err := db.GetBlob("default", img.layer.Digest)
	if err != nil || gotBlob.Labels["k"] != "v" {
		t.Fatalf("GetBlob = %+v, %v; want label k=v", gotBlob, err)
	}
	statBlob, err := db.Content().Stat("default", img.layer.Digest)
	if err != nil || statBlob.Labels != nil {
		t.Fatalf("ContentStore.Stat = %+v, %v; want no labels", statBlob, err)
	}
	if statBlob.Size != gotBlob.Size || statBlob.Size != img.layer.Size || !statBlob.Held || !statBlob.InUse || !statBlob.CreatedAt.Equal(gotBlob.CreatedAt) {
		t.Fatalf("ContentStore.Stat = %+v, GetBlob = %+v", statBlob, gotBlob)
	}
	blobs, err := db.Content().List("default")
	if err != nil || len(blobs) != 3 {
		t.Fatalf("ContentStore.List = %+v, %v; want manifest, config and layer", blobs, err)
	}
	for _, b := range blobs {
		if b.Labels != nil || !b.Held || b.Size == 0 {
			t.Fatalf("ContentStore.List entry %+v: want held, sized, without labels", b)
		}
	}

	// The same refusals as the Get variants.
	_, err = db.Namespaces().Stat("nope")
	wantKind(t, "NamespaceStore.Stat of a missing namespace", err, IsNotFound, "ErrNotFound")
	_, err = db.Images().Stat("default", "nope")
	wantKind(t, "ImageStore.Stat of a missing image", err, IsNotFound, "ErrNotFound")
	_, err = db.Images().Stat("nope", "dir/x")
	wantKind(t, "ImageStore.Stat in a missing namespace", err, IsNotFound, "ErrNotFound")
	_, err = db.Content().Stat("default", digest.FromString("nobody has this"))
	wantKind(t, "ContentStore.Stat of an absent blob", err, IsNotFound, "ErrNotFound")
	_, err = db.Content().Stat("default", "sha256:XYZ")
	wantKind(t, "ContentStore.Stat of a bad digest", err, IsInvalidArgument, "ErrInvalidArgument")
}

func equalNamespaces(a, b Namespace) bool {
	return a.Name == b.Name && a.ID == b.ID && a.CreatedAt.Equal(b.CreatedAt) && a.UpdatedAt.Equal(b.UpdatedAt)
}

// Label answers one key: the value, ErrNoLabel when the object has no
// such label, ErrNotFound when the object is gone.
func TestLabel(t *testing.T) {
	db := openTestDB(t, Options{})
	img := seedImage(t, db, "default", "x")
	putImages(t, db, "default", img.manifest, []string{"x"})
	if _, err := db.Namespaces().Create("foo", nil); err != nil {
		t.Fatal(err)
	}
	for _, o := range []Object{
		{Namespace: "default"},
		{Namespace: "default", Image: "x"},
		{Namespace: "default", Blob: img.layer.Digest},
	} {
		if err := db.Labels().Set(o, "team", "infra", nil); err != nil {
			t.Fatal(err)
		}
		if err := db.Labels().Set(o, "other", "1", nil); err != nil {
			t.Fatal(err)
		}
		if v, err := db.Labels().Get(o, "team"); err != nil || v != "infra" {
			t.Errorf("Label(%s, team) = %q, %v; want infra", o, v, err)
		}
		_, err := db.Labels().Get(o, "absent")
		wantKind(t, "Label of an absent key of "+o.String(), err, IsNoLabel, "ErrNoLabel")
		if err := db.Labels().Set(o, "team", "", nil); err != nil { // removes it
			t.Fatal(err)
		}
		_, err = db.Labels().Get(o, "team")
		wantKind(t, "Label of a removed key of "+o.String(), err, IsNoLabel, "ErrNoLabel")
	}

	// foo sees default's blob (shared) but holds none of its labels.
	_, err := db.Labels().Get(Object{Namespace: "foo", Blob: img.layer.Digest}, "other")
	wantKind(t, "Label of a blob foo sees but does not hold", err, IsNoLabel, "ErrNoLabel")

	for what, o := range map[string]Object{
		"a missing namespace": {Namespace: "nope"},
		"a missing image":     {Namespace: "default", Image: "nope"},
		"an absent blob":      {Namespace: "default", Blob: digest.FromString("nobody has this")},
	} {
		_, err := db.Labels().Get(o, "other")
		wantKind(t, "Label of "+what, err, IsNotFound, "ErrNotFound")
	}
	_, err = db.Labels().Get(Object{Namespace: "default", Blob: "sha256:XYZ"}, "other")
	wantKind(t, "Label of a bad digest", err, IsInvalidArgument, "ErrInvalidArgument")
}
