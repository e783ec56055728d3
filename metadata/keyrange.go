package metadata

import (
	"bytes"

	bolt "go.etcd.io/bbolt"
)

// keyRange is the keys of one bucket that start with a prefix, used as a
// small bucket of its own: an object's labels ("labels/<key>"), an image's
// claim set ("blobs/<digest>") and missing set ("missing/<digest>"), a
// blob's holders ("namespaces/<ns>"). They
// are flat keys rather than nested buckets because bbolt keeps a bucket
// inline in its parent's page only while it has no nested bucket and
// stays under a quarter page: a nested labels/ or blobs/ bucket cost every
// image, every hold and every content record a 4 KiB page of its own
// (doc.go, schema version 2).
// The zero keyRange (nil bucket) is empty and refuses writes.
//
// A store of schema version 1 opened read-only (nsfs fsck) is not
// migrated: reads then find the range in the nested bucket of version 1
// (the prefix without its slash) when there is one.
type keyRange struct {
	b      *bolt.Bucket
	prefix []byte
}

// Prefixes of the flat keys (doc.go).
var (
	prefixLabels  = []byte("labels/")
	prefixClaims  = []byte("blobs/")
	prefixMissing = []byte("missing/")
	prefixHolders = []byte("namespaces/")
)

// labelsOf is the labels of a namespace, a blob hold, an image's data or a
// pending image (owner nil: none).
func labelsOf(owner *bolt.Bucket) keyRange { return keyRange{owner, prefixLabels} }

// claimsOf is the claim set of an image (its imagedata bucket).
func claimsOf(data *bolt.Bucket) keyRange { return keyRange{data, prefixClaims} }

// holdersOf is the namespaces holding a blob (its content record cb; nil:
// none).
func holdersOf(cb *bolt.Bucket) keyRange { return keyRange{cb, prefixHolders} }

// missingOf is the missing set of an image (its imagedata bucket).
func missingOf(data *bolt.Bucket) keyRange { return keyRange{data, prefixMissing} }

// legacy is version 1's nested bucket of the range, nil in a migrated
// store.
func (r keyRange) legacy() *bolt.Bucket {
	if r.b == nil {
		return nil
	}
	return r.b.Bucket(r.prefix[:len(r.prefix)-1])
}

func (r keyRange) key(k []byte) []byte {
	full := make([]byte, 0, len(r.prefix)+len(k))
	return append(append(full, r.prefix...), k...)
}

// Get is the value of k, nil when absent (or empty in a write transaction:
// test membership with has).
func (r keyRange) Get(k []byte) []byte {
	if r.b == nil {
		return nil
	}
	if old := r.legacy(); old != nil {
		return old.Get(k)
	}
	return r.b.Get(r.key(k))
}

// has reports whether k is in the range.
func (r keyRange) has(k []byte) bool {
	if old := r.legacy(); old != nil {
		return hasKey(old, k)
	}
	return hasKey(r.b, r.key(k))
}

func (r keyRange) Put(k, v []byte) error {
	if r.b == nil {
		return errCorrupt
	}
	return r.b.Put(r.key(k), v)
}

func (r keyRange) Delete(k []byte) error {
	if r.b == nil {
		return nil
	}
	return r.b.Delete(r.key(k))
}

// ForEach calls fn with every key of the range (prefix removed) and its
// value, in key order; fn must not change the range.
func (r keyRange) ForEach(fn func(k, v []byte) error) error {
	if r.b == nil {
		return nil
	}
	if old := r.legacy(); old != nil {
		return old.ForEach(fn)
	}
	c := r.b.Cursor()
	for k, v := c.Seek(r.prefix); k != nil && bytes.HasPrefix(k, r.prefix); k, v = c.Next() {
		if err := fn(k[len(r.prefix):], v); err != nil {
			return err
		}
	}
	return nil
}

// empty reports whether the range has no key.
func (r keyRange) empty() bool {
	if old := r.legacy(); old != nil {
		k, _ := old.Cursor().First()
		return k == nil
	}
	return !hasPrefixKey(r.b, r.prefix)
}

// clear deletes every key of the range.
func (r keyRange) clear() error {
	var keys [][]byte
	_ = r.ForEach(func(k, _ []byte) error {
		keys = append(keys, append([]byte(nil), k...))
		return nil
	})
	for _, k := range keys {
		if err := r.Delete(k); err != nil {
			return err
		}
	}
	return nil
}
