package metadata

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/nsfs/nsfs/blobs"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	bolt "go.etcd.io/bbolt"
)

// openTestDB opens a fresh store in a temporary directory, closed at the
// end of the test.
func openTestDB(t testing.TB, opts Options) *DB {
	t.Helper()
	db, err := Open(t.TempDir(), opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// mutateStore opens the closed store at root with bbolt alone and lets
// mutate change it in one transaction: a store of an older schema, or a
// damage such as a flipped bit in meta.db would make.
func mutateStore(t *testing.T, root string, mutate func(tx *bolt.Tx) error) {
	t.Helper()
	bdb, err := bolt.Open(metaPath(root), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := bdb.Update(mutate); err != nil {
		t.Fatal(err)
	}
	if err := bdb.Close(); err != nil {
		t.Fatal(err)
	}
}

// mustWriteBlob ingests data into ns through ContentStore.Writer and Commit.
func mustWriteBlob(t testing.TB, db *DB, ns string, data []byte) ocispec.Descriptor {
	t.Helper()
	d := digest.FromBytes(data)
	w, err := db.Content().Writer(ns, 0, d)
	if err != nil {
		t.Fatalf("ContentStore.Writer(%s, %s): %v", ns, d, err)
	}
	if _, err := w.Write(data); err != nil {
		t.Fatalf("Write: %v", err)
	}
	if err := w.Commit(); err != nil {
		t.Fatalf("Commit(%s, %s): %v", ns, d, err)
	}
	return ocispec.Descriptor{MediaType: "application/octet-stream", Digest: d, Size: int64(len(data))}
}

func descriptor(mediaType string, data []byte) ocispec.Descriptor {
	return ocispec.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(data), Size: int64(len(data))}
}

// manifestJSON is an OCI image manifest naming config and layers.
func manifestJSON(config ocispec.Descriptor, layers ...ocispec.Descriptor) []byte {
	config.MediaType = ocispec.MediaTypeImageConfig
	for i := range layers {
		if layers[i].MediaType == "" || layers[i].MediaType == "application/octet-stream" {
			layers[i].MediaType = ocispec.MediaTypeImageLayerGzip
		}
	}
	if layers == nil {
		layers = []ocispec.Descriptor{}
	}
	m := map[string]any{
		"schemaVersion": 2,
		"mediaType":     ocispec.MediaTypeImageManifest,
		"config":        config,
		"layers":        layers,
	}
	b, err := json.Marshal(m)
	if err != nil {
		panic(err)
	}
	return b
}

// indexJSON is an OCI index of manifests.
func indexJSON(manifests ...ocispec.Descriptor) []byte {
	for i := range manifests {
		manifests[i].MediaType = ocispec.MediaTypeImageManifest
	}
	b, err := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     ocispec.MediaTypeImageIndex,
		"manifests":     manifests,
	})
	if err != nil {
		panic(err)
	}
	return b
}

// seededImage is an image whose config and layer blobs were written into
// a namespace.
type seededImage struct {
	config, layer ocispec.Descriptor
	manifest      []byte
	digest        digest.Digest
}

// seedImage writes a config and a layer (distinct per name) into ns and
// returns a manifest naming them (not yet put).
func seedImage(t testing.TB, db *DB, ns, name string) seededImage {
	t.Helper()
	config := mustWriteBlob(t, db, ns, []byte(`{"architecture":"amd64","os":"linux","name":"`+name+`"}`))
	layer := mustWriteBlob(t, db, ns, []byte("layer bytes of "+name))
	m := manifestJSON(config, layer)
	return seededImage{config: config, layer: layer, manifest: m, digest: digest.FromBytes(m)}
}

// dump renders the whole bbolt tree (keys, values, bucket sequences) plus
// the blob and ingest files, so a test can tell that nothing changed.
func dump(t testing.TB, db *DB) string {
	t.Helper()
	var sb strings.Builder
	var walk func(b *bolt.Bucket, indent string)
	walk = func(b *bolt.Bucket, indent string) {
		fmt.Fprintf(&sb, "%s(seq %d)\n", indent, b.Sequence())
		_ = b.ForEach(func(k, v []byte) error {
			if v == nil {
				fmt.Fprintf(&sb, "%s%q/\n", indent, k)
				walk(b.Bucket(k), indent+"  ")
			} else {
				fmt.Fprintf(&sb, "%s%q -> %x\n", indent, k, v)
			}
			return nil
		})
	}
	err := db.bolt.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			fmt.Fprintf(&sb, "%q/\n", name)
			walk(b, "  ")
			return nil
		})
	})
	if err != nil {
		t.Fatalf("dump: %v", err)
	}
	for _, f := range blobFiles(t, db) {
		fmt.Fprintf(&sb, "file %s\n", f)
	}
	_ = db.blobs.WalkIngests(func(info blobs.IngestInfo) error {
		fmt.Fprintf(&sb, "ingest %s\n", info.Name)
		return nil
	})
	return sb.String()
}

// blobFiles lists the committed blob files, sorted.
func blobFiles(t testing.TB, db *DB) []digest.Digest {
	t.Helper()
	listed, err := db.blobs.List()
	if err != nil {
		t.Fatalf("list blobs: %v", err)
	}
	var files []digest.Digest
	for d := range listed.Files {
		files = append(files, d)
	}
	sort.Slice(files, func(i, j int) bool { return files[i] < files[j] })
	return files
}

// blobPath is where blob d's file lives in db's store.
func blobPath(db *DB, d digest.Digest) string { return filepath.Join(db.root, blobs.RelPath(d)) }

func fileExists(db *DB, d digest.Digest) bool {
	_, err := os.Stat(blobPath(db, d))
	return err == nil
}

// heldDigests lists what ns holds.
func heldDigests(t testing.TB, db *DB, ns string) []digest.Digest {
	t.Helper()
	list, err := db.Content().List(ns)
	if err != nil {
		t.Fatalf("ContentStore.List(%s): %v", ns, err)
	}
	var ds []digest.Digest
	for _, b := range list {
		ds = append(ds, b.Digest)
	}
	return ds
}

// releasedBy runs op and returns, sorted, the blobs ns held before it and
// does not hold after it: what op released.
func releasedBy(t testing.TB, db *DB, ns string, op func() error) []digest.Digest {
	t.Helper()
	before := heldDigests(t, db, ns)
	if err := op(); err != nil {
		t.Fatal(err)
	}
	after := map[digest.Digest]bool{}
	for _, d := range heldDigests(t, db, ns) {
		after[d] = true
	}
	var released []digest.Digest
	for _, d := range before {
		if !after[d] {
			released = append(released, d)
		}
	}
	return sortedDigests(released...)
}

func sortedDigests(ds ...digest.Digest) []digest.Digest {
	out := append([]digest.Digest(nil), ds...)
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

func equalDigests(a, b []digest.Digest) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// wantKind fails unless err is of the kind is reports.
func wantKind(t testing.TB, what string, err error, is func(error) bool, kind string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: succeeded, want %s", what, kind)
	}
	if !is(err) {
		t.Fatalf("%s: error %q, want kind %s", what, err, kind)
	}
}

// checkInvariants verifies the invariants doc.go lists, records against
// records and records against files.
func checkInvariants(t testing.TB, db *DB) {
	t.Helper()
	type key struct {
		ns string
		d  string
	}
	held := map[key]uint64{}    // the images count each hold records
	claimed := map[key]uint64{} // how many images claim it
	holders := map[key]bool{}   // global holder entries
	content := map[string]bool{}
	err := db.bolt.View(func(tx *bolt.Tx) error {
		checkTopLayout(t, tx)
		all := namespacesBucket(tx)
		if err := all.ForEachBucket(func(name []byte) error {
			ns := string(name)
			nsb := all.Bucket(name)
			for _, sub := range [][]byte{bucketImages, bucketImageData, bucketDirs, bucketBlobs} {
				if nsSub(nsb, sub) == nil {
					t.Errorf("namespace %s has no %s bucket", ns, sub)
				}
			}
			if nsb.Bucket(bucketLabels) != nil {
				t.Errorf("namespace %s has a labels bucket of schema version 1", ns)
			}
			bb := nsSub(nsb, bucketBlobs)
			_ = bb.ForEachBucket(func(d []byte) error {
				held[key{ns, string(d)}] = getUint64(bb.Bucket(d), keyImages)
				// No nested bucket: bbolt keeps a hold inline.
				_ = bb.Bucket(d).ForEachBucket(func(sub []byte) error {
					t.Errorf("namespace %s: hold of %s has a nested bucket %q", ns, d, sub)
					return nil
				})
				return nil
			})
			// Every image record names its own imagedata bucket, and every
			// imagedata bucket belongs to one image.
			data := nsSub(nsb, bucketImageData)
			owners := map[uint64]string{}
			if err := nsSub(nsb, bucketImages).ForEach(func(ref, v []byte) error {
				rec, err := decodeImageRecord(v)
				if err != nil {
					return fmt.Errorf("image %s/%s: %w", ns, ref, err)
				}
				if other, ok := owners[rec.id]; ok {
					t.Errorf("images %s/%s and %s/%s share ID %d", ns, ref, ns, other, rec.id)
				}
				owners[rec.id] = string(ref)
				idb := data.Bucket(encodeUint64(rec.id))
				if idb == nil {
					t.Errorf("image %s/%s has no imagedata bucket", ns, ref)
					return nil
				}
				for _, d := range claimSet(idb) {
					claimed[key{ns, string(d)}]++
				}
				// No nested bucket: bbolt keeps an image's data inline.
				_ = idb.ForEachBucket(func(sub []byte) error {
					t.Errorf("image %s/%s: its data has a nested bucket %q", ns, ref, sub)
					return nil
				})
				if !claimsOf(idb).has([]byte(rec.target.Digest)) {
					t.Errorf("image %s/%s does not claim its own manifest %s", ns, ref, rec.target.Digest)
				}
				return nil
			}); err != nil {
				return err
			}
			return data.ForEachBucket(func(id []byte) error {
				if _, ok := owners[decodeUint64(id)]; !ok {
					t.Errorf("namespace %s: imagedata %d belongs to no image", ns, decodeUint64(id))
				}
				return nil
			})
		}); err != nil {
			return err
		}
		checkWantedIndex(t, db, tx)
		// The shareable index counts exactly the shareable holders.
		if err := checkShareableIndex(tx); err != nil {
			t.Error(err)
		}
		cb := contentBucket(tx)
		return cb.ForEachBucket(func(d []byte) error {
			content[string(d)] = true
			hb := holdersOf(cb.Bucket(d))
			// No nested bucket: bbolt keeps a content record inline.
			_ = cb.Bucket(d).ForEachBucket(func(sub []byte) error {
				t.Errorf("content record %s has a nested bucket %q", d, sub)
				return nil
			})
			n := 0
			_ = hb.ForEach(func(ns, _ []byte) error {
				holders[key{string(ns), string(d)}] = true
				n++
				return nil
			})
			if n == 0 {
				t.Errorf("content record %s has no holder", d)
			}
			return nil
		})
	})
	if err != nil {
		t.Fatalf("check invariants: %v", err)
	}
	for k := range holders {
		if _, ok := held[k]; !ok {
			t.Errorf("content %s names holder %s, which has no record of it", k.d, k.ns)
		}
	}
	for k, count := range held {
		if !holders[k] {
			t.Errorf("namespace %s holds %s, but the content record does not name it", k.ns, k.d)
		}
		if count != claimed[k] {
			t.Errorf("namespace %s blob %s: images count %d, but %d images claim it", k.ns, k.d, count, claimed[k])
		}
	}
	for k := range claimed {
		if _, ok := held[k]; !ok {
			t.Errorf("an image of namespace %s claims %s, which the namespace does not hold", k.ns, k.d)
		}
	}
	files := map[string]bool{}
	for _, d := range blobFiles(t, db) {
		files[string(d)] = true
		if !content[string(d)] {
			t.Errorf("blob file %s has no content record", d)
		}
	}
	for d := range content {
		if !files[d] {
			t.Errorf("content record %s has no file", d)
		}
	}
	// fsck's check must agree: the store is clean.
	rep, err := db.Check(CheckOptions{VerifyBlobs: true})
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	for _, p := range rep.Problems {
		t.Errorf("fsck: %s", p)
	}
}

// checkTopLayout checks schema version 3's top level (nstop.go): v1/ has
// no namespaces/ and no sequence or dirtimes/ of its own any more, and
// nsdir/ has no nested bucket, so bbolt keeps it inline in the top page.
func checkTopLayout(t testing.TB, tx *bolt.Tx) {
	t.Helper()
	v1 := root(tx)
	if v1.Bucket(bucketNamespaces) != nil || v1.Bucket(bucketDirTimes) != nil || v1.Sequence() != 0 {
		t.Errorf("v1/ still has namespaces/ (%v), dirtimes/ (%v) or a sequence (%d)",
			v1.Bucket(bucketNamespaces) != nil, v1.Bucket(bucketDirTimes) != nil, v1.Sequence())
	}
	nsdir := tx.Bucket(bucketNSDir)
	if nsdir == nil {
		t.Errorf("no %s/ bucket", bucketNSDir)
		return
	}
	if nsdir.Root() != 0 {
		t.Errorf("%s/ is not inline (its root is page %d)", bucketNSDir, nsdir.Root())
	}
	_ = nsdir.ForEachBucket(func(k []byte) error {
		t.Errorf("%s/ has a nested bucket %q", bucketNSDir, k)
		return nil
	})
	// A namespace's record has no nested bucket (inline while small);
	// its data, if any, is nsdata/<its ID>; nsdata/0 stays empty.
	owners := map[string]bool{}
	all := namespacesBucket(tx)
	_ = all.ForEachBucket(func(name []byte) error {
		nsb := all.Bucket(name)
		owners[string(nsb.Get(keyID))] = true
		_ = nsb.ForEachBucket(func(k []byte) error {
			t.Errorf("namespace %s: its record has a nested bucket %q", name, k)
			return nil
		})
		return nil
	})
	empty := tx.Bucket(noData)
	if empty == nil {
		t.Errorf("no nsdata/0")
		return
	}
	_ = empty.ForEachBucket(func(k []byte) error {
		if !isEmptyBucket(empty.Bucket(k)) {
			t.Errorf("nsdata/0/%s is not empty", k)
		}
		return nil
	})
	c := tx.Cursor()
	for k, _ := c.Seek(prefixData); k != nil && bytes.HasPrefix(k, prefixData); k, _ = c.Next() {
		if id := k[len(prefixData):]; decodeUint64(id) != 0 && !owners[string(id)] {
			t.Errorf("data bucket nsdata/%d belongs to no namespace", decodeUint64(id))
		}
	}
}
