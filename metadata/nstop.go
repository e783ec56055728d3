package metadata

import (
	"bytes"

	"github.com/pkg/errors"
	bolt "go.etcd.io/bbolt"
)

// Schema version 3 keeps each namespace in a top-level bucket of its own,
// "ns/<name>", and what changes when namespaces come and go (the ID
// sequence, ns/'s times) in the small top-level bucket nsdir/, which bbolt
// keeps inline in the page of the top-level bucket headers. bbolt rewrites
// every page from a changed key up to that page at each commit, one
// write each before the commit's fdatasync: under v1/namespaces/ a label
// of a namespace rewrote its page, namespaces/'s, v1/'s and the top page
// (4 pages and the meta page); now its page and the top page. A mkdir
// writes its new page and the top page (was 4), an rmdir the top page
// alone (was 3).
var (
	prefixNamespace = []byte("ns/")
	bucketNSDir     = []byte("nsdir")
	keyTimes        = []byte("times")
)

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

// DeleteBucket deletes namespace name's bucket and all it has.
func (s namespaceSet) DeleteBucket(name []byte) error {
	if s.legacy != nil {
		return s.legacy.DeleteBucket(name)
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
