package metadata

import (
	"fmt"
	"testing"

	"github.com/opencontainers/go-digest"
	bolt "go.etcd.io/bbolt"
)

// checkWantedIndex: the wanted index, for each namespace, is exactly the
// union of its images' missing sets, and names no namespace that is gone; an image never both claims and
// misses a blob, and misses no blob its namespace can see with the size
// it names (it would have claimed it).
func checkWantedIndex(t testing.TB, db *DB, tx *bolt.Tx) {
	t.Helper()
	all := namespacesBucket(tx)
	if wb := root(tx).Bucket(bucketWanted); wb != nil {
		_ = wb.ForEachBucket(func(d []byte) error {
			if isEmptyBucket(wb.Bucket(d)) {
				t.Errorf("an empty wanted/%s bucket", d)
			}
			return wb.Bucket(d).ForEachBucket(func(ns []byte) error {
				if all.Bucket(ns) == nil {
					t.Errorf("wanted/%s names namespace %s, which is gone", d, ns)
				}
				return nil
			})
		})
	}
	_ = all.ForEachBucket(func(name []byte) error {
		ns := string(name)
		nsb := all.Bucket(name)
		want := map[digest.Digest]map[uint64]bool{}
		_ = nsSub(nsb, bucketImages).ForEach(func(ref, v []byte) error {
			rec, err := decodeImageRecord(v)
			if err != nil {
				return nil
			}
			idb := nsSub(nsb, bucketImageData).Bucket(encodeUint64(rec.id))
			if idb == nil {
				return nil
			}
			claims := map[digest.Digest]bool{}
			for _, d := range claimSet(idb) {
				claims[d] = true
			}
			for d, size := range missingSet(idb) {
				if claims[d] {
					t.Errorf("image %s/%s both claims and misses %s", ns, ref, d)
				}
				if got, ok := db.visible(tx, ns, d); ok && got == size {
					t.Errorf("image %s/%s misses %s, which its namespace can see", ns, ref, d)
				}
				if want[d] == nil {
					want[d] = map[uint64]bool{}
				}
				want[d][rec.id] = true
			}
			return nil
		})
		got := map[digest.Digest]map[uint64]bool{}
		if wb := root(tx).Bucket(bucketWanted); wb != nil {
			_ = wb.ForEachBucket(func(d []byte) error {
				ib := wb.Bucket(d).Bucket(name)
				if ib == nil {
					return nil
				}
				if isEmptyBucket(ib) {
					t.Errorf("namespace %s: an empty wanted/%s/%s bucket", ns, d, ns)
				}
				got[digest.Digest(d)] = map[uint64]bool{}
				return ib.ForEach(func(id, _ []byte) error {
					got[digest.Digest(d)][decodeUint64(id)] = true
					return nil
				})
			})
		}
		if len(got) != len(want) {
			t.Errorf("namespace %s: wanted index %v, the images miss %v", ns, got, want)
			return nil
		}
		for d, ids := range want {
			if len(got[d]) != len(ids) {
				t.Errorf("namespace %s: wanted index of %s is %v, the images missing it %v", ns, d, got[d], ids)
				continue
			}
			for id := range ids {
				if !got[d][id] {
					t.Errorf("namespace %s: wanted index of %s lacks image ID %d", ns, d, id)
				}
			}
		}
		return nil
	})
}

// An image written before its blobs (tar lists images/ before blobs/) is
// incomplete: it claims each blob as it arrives, in its own namespace or,
// under shared content, in any; replaced, linked or deleted before they
// arrive, it keeps the index right; fsck finds nothing wrong with it.
func TestIncompleteImage(t *testing.T) {
	db := openTestDB(t, Options{})
	if _, err := db.Namespaces().Create("other", nil); err != nil {
		t.Fatal(err)
	}
	config := descriptor("application/vnd.oci.image.config.v1+json", []byte(`{"architecture":"amd64","os":"linux"}`))
	layer := descriptor("application/vnd.oci.image.layer.v1.tar", []byte("a layer written after its image"))
	m := manifestJSON(config, layer)
	img, err := db.Images().Put(ImageWrite{Namespace: "default", Ref: "app", Manifest: m})
	if err != nil {
		t.Fatalf("an image before its blobs: %v", err)
	}
	if _, err := db.Images().Link("default", "app", "default", "app-tag"); err != nil {
		t.Fatal(err)
	}
	checkInvariants(t, db)
	if rep := mustCheck(t, db, CheckOptions{}); len(rep.Problems) != 0 {
		t.Fatalf("fsck of an incomplete image:\n%s", problemLines(rep.Problems))
	}
	if got := heldDigests(t, db, "default"); !equalDigests(got, []digest.Digest{img.Target.Digest}) {
		t.Fatalf("default holds %v, want only the manifest", got)
	}

	// The config arrives in this namespace, the layer (shared content)
	// in another one: both images claim both.
	mustWriteBlob(t, db, "default", []byte(`{"architecture":"amd64","os":"linux"}`))
	mustWriteBlob(t, db, "other", []byte("a layer written after its image"))
	for _, d := range []digest.Digest{config.Digest, layer.Digest} {
		b, err := db.GetBlob("default", d)
		if err != nil || !b.Held || !b.InUse {
			t.Fatalf("blob %s once it arrived: %+v %v, want held and claimed", d, b, err)
		}
	}
	checkInvariants(t, db)
	// Claimed by both images: removing one keeps it, removing both
	// releases it.
	if err := db.Content().Delete("default", layer.Digest); !IsInUse(err) {
		t.Fatalf("rm of the claimed layer: %v, want ErrInUse", err)
	}
	for _, ref := range []string{"app", "app-tag"} {
		if err := db.Images().Delete("default", ref); err != nil {
			t.Fatal(err)
		}
	}
	if got := heldDigests(t, db, "default"); len(got) != 0 {
		t.Fatalf("default holds %v after its images went", got)
	}
	checkInvariants(t, db)

	// Deleted or replaced before the blobs arrive: nothing stays wanted.
	other := manifestJSON(config, descriptor("application/vnd.oci.image.layer.v1.tar", []byte("never written")))
	if _, err := db.Images().Put(ImageWrite{Namespace: "default", Ref: "gone", Manifest: other}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Images().Put(ImageWrite{Namespace: "default", Ref: "gone", Manifest: m}); err != nil {
		t.Fatal(err)
	}
	checkInvariants(t, db)
	if err := db.Images().Delete("default", "gone"); err != nil {
		t.Fatal(err)
	}
	checkInvariants(t, db)
}

// A manifest that names a size its blob does not have stays incomplete
// when the blob arrives, and fsck says why.
func TestIncompleteImageLyingSize(t *testing.T) {
	db := openTestDB(t, Options{})
	layerBytes := []byte("the layer")
	layer := descriptor("application/vnd.oci.image.layer.v1.tar", layerBytes)
	layer.Size++
	m := manifestJSON(descriptor("application/vnd.oci.image.config.v1+json", []byte("{}")), layer)
	if _, err := db.Images().Put(ImageWrite{Namespace: "default", Ref: "liar", Manifest: m}); err != nil {
		t.Fatal(err)
	}
	mustWriteBlob(t, db, "default", layerBytes)
	if b, err := db.GetBlob("default", layer.Digest); err != nil || b.InUse {
		t.Fatalf("the layer of a lying manifest: %+v %v, want held by its write only", b, err)
	}
	if rep := mustCheck(t, db, CheckOptions{}); len(rep.Problems) == 0 {
		t.Fatal("fsck finds nothing wrong with a lying size")
	}
}

// Under isolated content an image may name blobs of other namespaces, but
// never reads them; it claims them once the namespace holding them is
// labelled shareable (TestIsolatedSharing), or once it sends the bytes.
func TestIncompleteImageIsolated(t *testing.T) {
	db := openTestDB(t, Options{Sharing: SharingIsolated})
	if _, err := db.Namespaces().Create("b", nil); err != nil {
		t.Fatal(err)
	}
	img := seedImage(t, db, "default", "x")
	if _, err := db.Images().Put(ImageWrite{Namespace: "b", Ref: "x", Manifest: img.manifest}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Content().Open("b", img.layer.Digest); !IsNotFound(err) {
		t.Fatalf("b reads a blob its image names: %v", err)
	}
	mustWriteBlob(t, db, "b", []byte("layer bytes of x"))
	if b, err := db.GetBlob("b", img.layer.Digest); err != nil || !b.InUse {
		t.Fatalf("the layer b sent: %+v %v", b, err)
	}
	checkInvariants(t, db)
}

// A blob that arrives in one namespace is not claimed by another
// namespace's incomplete image past that namespace's quota: the write that
// brought it succeeds, the image keeps missing it, and it claims it once
// root raises the quota. Likewise an image of a namespace isolated by its
// own setting claims what it can see once root turns it shared.
func TestIncompleteImageFollowsRootsSettings(t *testing.T) {
	db := openTestDB(t, Options{})
	for _, ns := range []string{"b", "c"} {
		if _, err := db.Namespaces().Create(ns, nil); err != nil {
			t.Fatal(err)
		}
	}
	configBytes := []byte(`{"architecture":"amd64","os":"linux"}`)
	layerBytes := []byte("a layer of forty bytes, give or take some")
	config := descriptor("application/vnd.oci.image.config.v1+json", configBytes)
	layer := descriptor("application/vnd.oci.image.layer.v1.tar", layerBytes)
	m := manifestJSON(config, layer)
	quota := fmt.Sprint(int64(len(m)) + config.Size) // the layer does not fit
	if err := db.Namespaces().SetSetting("b", Root, SettingQuota, quota); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Images().Put(ImageWrite{Namespace: "b", Ref: "app", Manifest: m}); err != nil {
		t.Fatalf("an incomplete image within the quota: %v", err)
	}
	mustWriteBlob(t, db, "default", configBytes)
	mustWriteBlob(t, db, "default", layerBytes) // would pass b's quota
	if b, err := db.GetBlob("b", config.Digest); err != nil || !b.InUse {
		t.Fatalf("b's config once it arrived: %+v %v, want claimed", b, err)
	}
	if b, err := db.GetBlob("b", layer.Digest); err == nil && b.Held {
		t.Fatalf("b holds the layer past its quota: %+v", b)
	}
	if rep := mustCheck(t, db, CheckOptions{}); len(rep.Problems) != 0 {
		t.Fatalf("fsck:\n%s", problemLines(rep.Problems))
	}
	if err := db.Namespaces().SetSetting("b", Root, SettingQuota, ""); err != nil {
		t.Fatal(err)
	}
	if b, err := db.GetBlob("b", layer.Digest); err != nil || !b.InUse {
		t.Fatalf("b's layer once its quota went: %+v %v, want claimed", b, err)
	}

	if err := db.Namespaces().SetSetting("c", Root, SettingSharing, string(SharingIsolated)); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Images().Put(ImageWrite{Namespace: "c", Ref: "app", Manifest: m}); err != nil {
		t.Fatal(err)
	}
	if b, err := db.GetBlob("c", layer.Digest); err == nil && b.Held {
		t.Fatalf("isolated c holds another namespace's layer: %+v", b)
	}
	if err := db.Namespaces().SetSetting("c", Root, SettingSharing, string(SharingShared)); err != nil {
		t.Fatal(err)
	}
	for _, d := range []digest.Digest{config.Digest, layer.Digest} {
		if b, err := db.GetBlob("c", d); err != nil || !b.InUse {
			t.Fatalf("c's blob %s once c is shared: %+v %v, want claimed", d, b, err)
		}
	}
	checkInvariants(t, db)
}

// A namespace labelled shareable that comes to hold a blob without
// writing it (its image claims what it sees under shared content) makes
// the blob visible to isolated namespaces: their images that miss it
// claim it in that transaction.
func TestIncompleteImageClaimsWhatAShareableImageHolds(t *testing.T) {
	db := openTestDB(t, Options{})
	if _, err := db.Namespaces().Create("i", nil); err != nil {
		t.Fatal(err)
	}
	if err := db.Namespaces().SetSetting("i", Root, SettingSharing, string(SharingIsolated)); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Namespaces().Create("q", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Namespaces().Create("p", map[string]string{"containerd.io/namespace.shareable": "true"}); err != nil {
		t.Fatal(err)
	}
	img := seedImage(t, db, "q", "app") // q, private, holds the blobs
	if _, err := db.Images().Put(ImageWrite{Namespace: "i", Ref: "app", Manifest: img.manifest}); err != nil {
		t.Fatal(err)
	}
	if b, err := db.GetBlob("i", img.layer.Digest); err == nil && b.Held {
		t.Fatalf("isolated i holds a private namespace's layer: %+v", b)
	}
	// p sees q's blobs (shared) and claims them without writing them.
	if _, err := db.Images().Put(ImageWrite{Namespace: "p", Ref: "app", Manifest: img.manifest}); err != nil {
		t.Fatal(err)
	}
	for _, d := range []digest.Digest{img.config.Digest, img.layer.Digest} {
		if b, err := db.GetBlob("i", d); err != nil || !b.InUse {
			t.Fatalf("i's blob %s once shareable p holds it: %+v %v, want claimed", d, b, err)
		}
	}
	checkInvariants(t, db)
}
