package metadata

import (
	"bytes"

	"github.com/pkg/errors"
	bolt "go.etcd.io/bbolt"
)

// Schema version 3 splits a namespace in two top-level buckets: its
// record "ns/<name>" (ID, times, owner, settings, counters, labels: flat
// keys, no nested bucket) and its data "nsdata/<id>" (images/,
// imagedata/, dirs/, dirtimes/, blobs/). What changes when namespaces
// come and go (the ID sequence, ns/'s times) is in the top-level bucket
// nsdir/. Without a nested bucket, bbolt keeps a bucket under 1 KiB
// inline in its parent's page: nsdir/ and every record live in the page
// of the top-level bucket headers (the top page).
//
// bbolt rewrites, at every commit, each page from a changed key up to the
// top page, one write each before the commit's first fdatasync; pages far
// apart in the file cost a disk request each. Under v1/namespaces/<name>/
// a namespace label rewrote 4 pages (its own, namespaces/'s, v1/'s, the
// top page), a mkdir 4 and an rmdir 3. Now a label of a namespace, a
// mkdir and an rmdir rewrite the top page alone. A namespace gets its
// data bucket from the first write transaction that reaches its data
// (nsData); until then it reads the data of ID 0, never an ID of
// anything, which is always empty.
var (
	prefixNamespace = []byte("ns/")
	prefixData      = []byte("nsdata/")
	bucketNSDir     = []byte("nsdir")
	keyTimes        = []byte("times")
	// noData is the key of the data of ID 0: empty, never written.
	noDataID = make([]byte, 8)
	noData   = dataKey(noDataID)
)

// dataKey is the top-level bucket name of the data of the namespace whose
// ID is id (8 bytes).
func dataKey(id []byte) []byte {
	return append(append([]byte(nil), prefixData...), id...)
}

// legacyLayout reports whether tx's store keeps its namespaces in
// v1/namespaces/ (version 1 or 2, opened read-only, or being migrated).
func legacyLayout(tx *bolt.Tx) bool {
	v1 := root(tx)
	return v1 != nil && v1.Bucket(bucketNamespaces) != nil
}

// nsDataIfAny is the bucket holding namespace nsb's images/, imagedata/,
// dirs/, dirtimes/ and blobs/: its data bucket, or nil when it has none
// yet; in a store of version 1 or 2, nsb itself.
func nsDataIfAny(nsb *bolt.Bucket) *bolt.Bucket {
	tx := nsb.Tx()
	// ID 0 names the empty data every namespace without its own reads:
	// a record whose ID reads 0 has none (Recover refuses it).
	if id := nsb.Get(keyID); len(id) == 8 && decodeUint64(id) != 0 {
		var key [len("nsdata/") + 8]byte
		copy(key[copy(key[:], prefixData):], id)
		if data := tx.Bucket(key[:]); data != nil {
			return data
		}
	}
	if legacyLayout(tx) {
		return nsb
	}
	return nil
}

// nsData is nsDataIfAny, made (empty) in a write transaction when the
// namespace has none yet: a write transaction never sees the empty data of
// ID 0, so nothing is ever written there. A read sees that data for a
// namespace with none (nil if the store lost it: Recover refuses such a
// store).
func nsData(nsb *bolt.Bucket) *bolt.Bucket {
	if data := nsDataIfAny(nsb); data != nil {
		return data
	}
	tx := nsb.Tx()
	if !tx.Writable() {
		return tx.Bucket(noData)
	}
	id := nsb.Get(keyID)
	if len(id) != 8 || decodeUint64(id) == 0 {
		// A record without an ID: Recover refuses the store, fsck
		// --repair gives it one.
		return nil
	}
	data, err := createData(tx, id)
	if err != nil {
		return nil
	}
	return data
}

// createData makes the empty data bucket of the namespace with ID id.
func createData(tx *bolt.Tx, id []byte) (*bolt.Bucket, error) {
	data, err := tx.CreateBucket(dataKey(id))
	if err != nil {
		return nil, err
	}
	for _, sub := range [][]byte{bucketImages, bucketImageData, bucketDirs, bucketBlobs} {
		b, err := data.CreateBucket(sub)
		if err != nil {
			return nil, err
		}
		if bytes.Equal(sub, bucketImages) || bytes.Equal(sub, bucketImageData) {
			b.FillPercent = appendFillPercent
		}
	}
	return data, nil
}

// nsSub is namespace nsb's bucket name (images/, imagedata/, dirs/,
// dirtimes/ or blobs/), nil when it has none (nsData).
func nsSub(nsb *bolt.Bucket, name []byte) *bolt.Bucket {
	data := nsData(nsb)
	if data == nil {
		return nil
	}
	return data.Bucket(name)
}

// namespaceKey is the top-level bucket name of namespace name.
func namespaceKey(name []byte) []byte {
	return append(append([]byte(nil), prefixNamespace...), name...)
}

// namespaceSet is the store's namespaces, each a bucket named by the
// namespace's name: top-level buckets "ns/<name>", or the nested buckets
// of v1/namespaces/ in a store of schema version 1 or 2 (legacy), which a
// read-only open (fsck) reads unmigrated and the migration moves. It
// offers the *bolt.Bucket methods its callers use on the namespaces/
// bucket of version 2.
type namespaceSet struct {
	tx     *bolt.Tx
	legacy *bolt.Bucket
}

// Bucket is namespace name's bucket, nil if there is none.
func (s namespaceSet) Bucket(name []byte) *bolt.Bucket {
	if s.legacy != nil {
		return s.legacy.Bucket(name)
	}
	return s.tx.Bucket(namespaceKey(name))
}

// CreateBucket makes namespace name's bucket (bolt.ErrBucketExists).
func (s namespaceSet) CreateBucket(name []byte) (*bolt.Bucket, error) {
	if s.legacy != nil {
		return s.legacy.CreateBucket(name)
	}
	if len(name) == 0 {
		return nil, bolt.ErrBucketNameRequired
	}
	return s.tx.CreateBucket(namespaceKey(name))
}

// DeleteBucket deletes namespace name's record and data.
func (s namespaceSet) DeleteBucket(name []byte) error {
	if s.legacy != nil {
		return s.legacy.DeleteBucket(name)
	}
	if nsb := s.Bucket(name); nsb != nil {
		if id := nsb.Get(keyID); len(id) == 8 && decodeUint64(id) != 0 && s.tx.Bucket(dataKey(id)) != nil {
			if err := s.tx.DeleteBucket(dataKey(id)); err != nil {
				return err
			}
		}
	}
	return s.tx.DeleteBucket(namespaceKey(name))
}

// Delete deletes a key of v1/namespaces/ that is not a bucket (fsck
// --repair); version 3 has no such keys.
func (s namespaceSet) Delete(name []byte) error {
	if s.legacy != nil {
		return s.legacy.Delete(name)
	}
	return nil
}

// ForEach calls fn with every namespace's name, in order, and a nil value
// (a key of v1/namespaces/ that is not a bucket has its value: fsck's to
// report). The names are copied first: fn may create and delete
// namespaces.
func (s namespaceSet) ForEach(fn func(name, v []byte) error) error {
	if s.legacy != nil {
		return s.legacy.ForEach(fn)
	}
	var names [][]byte
	c := s.tx.Cursor()
	for k, _ := c.Seek(prefixNamespace); k != nil && bytes.HasPrefix(k, prefixNamespace); k, _ = c.Next() {
		names = append(names, append([]byte(nil), k[len(prefixNamespace):]...))
	}
	for _, name := range names {
		if err := fn(name, nil); err != nil {
			return err
		}
	}
	return nil
}

// ForEachBucket calls fn with every namespace's name, in order.
func (s namespaceSet) ForEachBucket(fn func(name []byte) error) error {
	if s.legacy != nil {
		return s.legacy.ForEachBucket(fn)
	}
	return s.ForEach(func(name, _ []byte) error { return fn(name) })
}

// idsBucket is the bucket whose sequence is the store's one ID counter:
// nsdir/ (v1/ in a store of version 1 or 2), nil when a store of version
// 3 lost it (Recover refuses the store, fsck --repair makes it again).
func idsBucket(tx *bolt.Tx) *bolt.Bucket {
	if b := tx.Bucket(bucketNSDir); b != nil {
		return b
	}
	if v1 := root(tx); v1 != nil && getUint64(v1, keyVersion) < 3 {
		return v1
	}
	return nil
}

// idSequence is the last ID taken (0 when the counter is lost).
func idSequence(tx *bolt.Tx) uint64 {
	if b := idsBucket(tx); b != nil {
		return b.Sequence()
	}
	return 0
}

// namespacesTimes are ns/'s times (ok false: none recorded yet).
func namespacesTimes(tx *bolt.Tx) (Times, bool) {
	if b := tx.Bucket(bucketNSDir); b != nil {
		return decodeTimes(b.Get(keyTimes))
	}
	return getDirTimes(root(tx), string(keyNamespaces))
}

// putNamespacesTimes records ns/'s times.
func putNamespacesTimes(tx *bolt.Tx, t Times) error {
	b := tx.Bucket(bucketNSDir)
	if b == nil {
		return errors.WithMessagef(errCorrupt, "bucket %q is missing", bucketNSDir)
	}
	return b.Put(keyTimes, encodeTimes(t))
}
