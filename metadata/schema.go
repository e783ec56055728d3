package metadata

import (
	"bytes"
	"encoding/binary"
	"time"

	"github.com/pkg/errors"
	bolt "go.etcd.io/bbolt"
)

// schemaVersion is stored in v1/version; a store written by a newer nsfs is
// refused rather than misread, one written by an older one migrated at its
// first writable open (migrate.go). The bucket stays v1/: its name is not
// the version.
const schemaVersion = 3

// Bucket and key names; the tree is drawn in doc.go.
var (
	bucketV1         = []byte("v1")
	bucketNamespaces = []byte("namespaces")
	bucketContent    = []byte("content")
	bucketLabels     = []byte("labels")
	bucketImages     = []byte("images")
	bucketImageData  = []byte("imagedata")
	bucketDirs       = []byte("dirs")
	bucketBlobs      = []byte("blobs")
	bucketHolders    = []byte("namespaces") // schema version 1's (migrate.go)
	bucketUnheld     = []byte("unheld")
	bucketShareable  = []byte("shareable")

	keyVersion   = []byte("version")
	keyID        = []byte("id")
	keyCreatedAt = []byte("createdat")
	keyUpdatedAt = []byte("updatedat")
	keySize      = []byte("size")
	keyImages    = []byte("images")
)

// member is the value of a key in a set-like bucket (holders, dirs, an
// image's claim set): the key is the datum. Test membership with hasKey,
// never with Get != nil, which is nil for an empty value in a write
// transaction.
var member = []byte{}

// hasKey reports whether a set-like bucket (one without nested buckets)
// has key k.
func hasKey(b *bolt.Bucket, k []byte) bool {
	if b == nil {
		return false
	}
	got, _ := b.Cursor().Seek(k)
	return got != nil && bytes.Equal(got, k)
}

// hasPrefixKey reports whether bucket b has a key (or nested bucket)
// starting with prefix.
func hasPrefixKey(b *bolt.Bucket, prefix []byte) bool {
	if b == nil {
		return false
	}
	got, _ := b.Cursor().Seek(prefix)
	return got != nil && bytes.HasPrefix(got, prefix)
}

// errCorrupt reports a record that does not have the shape doc.go draws.
var errCorrupt = errors.New("metadata store is corrupt")

func encodeUint64(v uint64) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, v)
	return b
}

func decodeUint64(b []byte) uint64 {
	if len(b) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(b)
}

func putUint64(b *bolt.Bucket, key []byte, v uint64) error {
	return b.Put(key, encodeUint64(v))
}

func getUint64(b *bolt.Bucket, key []byte) uint64 { return decodeUint64(b.Get(key)) }

func putInt64(b *bolt.Bucket, key []byte, v int64) error { return putUint64(b, key, uint64(v)) }

func getInt64(b *bolt.Bucket, key []byte) int64 { return int64(getUint64(b, key)) }

func putTime(b *bolt.Bucket, key []byte, t time.Time) error {
	v, err := t.MarshalBinary()
	if err != nil {
		return err
	}
	return b.Put(key, v)
}

func getTime(b *bolt.Bucket, key []byte) time.Time {
	var t time.Time
	if v := b.Get(key); v != nil {
		_ = t.UnmarshalBinary(v) // a zero time is the honest answer for a bad value
	}
	return t
}

// now is the timestamp of a mutation; UTC so that stored times compare and
// print the same wherever the store is opened.
func now() time.Time { return time.Now().UTC() }

// readLabels copies an object's labels (labelsOf; nil owner → empty map).
func readLabels(b keyRange) map[string]string {
	labels := map[string]string{}
	_ = b.ForEach(func(k, v []byte) error {
		labels[string(k)] = string(v)
		return nil
	})
	return labels
}

// nonEmptyLabels drops labels with empty values: containerd has no empty
// labels, and an empty value means removal.
func nonEmptyLabels(labels map[string]string) map[string]string {
	kept := make(map[string]string, len(labels))
	for k, v := range labels {
		if v != "" {
			kept[k] = v
		}
	}
	return kept
}

// writeLabels stores labels as parent's, which has none yet.
func writeLabels(parent *bolt.Bucket, labels map[string]string) error {
	lb := labelsOf(parent)
	for k, v := range labels {
		if err := lb.Put([]byte(k), []byte(v)); err != nil {
			return err
		}
	}
	return nil
}

// copyBucket copies every key and nested bucket of src into dst (bbolt has
// no rename of a bucket key; ImageStore.Rename needs one). Keys and values are
// copied out of the memory map first: bbolt wants them valid for the
// whole transaction, and a write transaction that grows the file remaps it.
// A nested bucket is told from a key by src.Bucket: in a write
// transaction ForEach gives an empty value as nil too.
func copyBucket(dst, src *bolt.Bucket) error {
	if err := dst.SetSequence(src.Sequence()); err != nil {
		return err
	}
	return src.ForEach(func(k, v []byte) error {
		k = append([]byte(nil), k...)
		nested := src.Bucket(k)
		if nested == nil {
			return dst.Put(k, append([]byte{}, v...))
		}
		child, err := dst.CreateBucket(k)
		if err != nil {
			return err
		}
		return copyBucket(child, nested)
	})
}

// root returns v1/ of a transaction, which Open guarantees exists.
func root(tx *bolt.Tx) *bolt.Bucket { return tx.Bucket(bucketV1) }

// namespacesBucket is the store's namespaces (namespaceSet).
func namespacesBucket(tx *bolt.Tx) namespaceSet {
	if v1 := root(tx); v1 != nil {
		if legacy := v1.Bucket(bucketNamespaces); legacy != nil {
			return namespaceSet{tx: tx, legacy: legacy}
		}
	}
	return namespaceSet{tx: tx}
}

// contentBucket is v1/content/.
func contentBucket(tx *bolt.Tx) *bolt.Bucket { return root(tx).Bucket(bucketContent) }

// unheldBucket is v1/unheld/, or nil in a store opened read-only that was
// written before it existed.
func unheldBucket(tx *bolt.Tx) *bolt.Bucket { return root(tx).Bucket(bucketUnheld) }

// namespaceBucket returns the bucket of namespace name or ErrNotFound.
func namespaceBucket(tx *bolt.Tx, name string) (*bolt.Bucket, error) {
	if b := namespacesBucket(tx).Bucket([]byte(name)); b != nil {
		if tx.Writable() {
			fillDense(b)
		}
		return b, nil
	}
	return nil, errors.WithMessagef(ErrNotFound, "namespace %q not found", name)
}

// nextID takes the next number of the store's one ID sequence.
func nextID(tx *bolt.Tx) (uint64, error) {
	b := idsBucket(tx)
	if b == nil {
		return 0, errors.WithMessagef(errCorrupt, "bucket %q is missing", bucketNSDir)
	}
	return b.NextSequence()
}

// subBucket returns a nested bucket that must exist in a well-formed store.
func subBucket(b *bolt.Bucket, name []byte) (*bolt.Bucket, error) {
	if sb := b.Bucket(name); sb != nil {
		return sb, nil
	}
	return nil, errors.WithMessagef(errCorrupt, "bucket %q is missing", name)
}

// appendFillPercent is how full bbolt fills a page before splitting it, in
// a bucket whose keys are mostly appended in order.
const appendFillPercent = 0.9

// fillDense has bbolt fill the pages of a namespace's images/ and
// imagedata/ to appendFillPercent before splitting them, in this write
// transaction (bbolt keeps the setting on the bucket it hands out, for the
// transaction). New IDs are appended to imagedata/, and refs are often
// written in order (a pull of tags, a copy of a tree): at bbolt's default
// of half a page, every page they fill stays half empty.
func fillDense(nsb *bolt.Bucket) {
	data := nsDataIfAny(nsb)
	if data == nil {
		return // made by the first write that needs it, dense then
	}
	for _, name := range [][]byte{bucketImages, bucketImageData} {
		if b := data.Bucket(name); b != nil {
			b.FillPercent = appendFillPercent
		}
	}
}
