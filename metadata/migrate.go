package metadata

import (
	"github.com/pkg/errors"
	bolt "go.etcd.io/bbolt"
)

// checkVersion refuses a schema version this nsfs cannot read: a newer
// one, or (writable) an older one it has not migrated. A store opened
// read-only is read as it is: version 1's nested buckets through
// keyRange.legacy.
func checkVersion(v1 *bolt.Bucket, readOnly bool) error {
	v := getUint64(v1, keyVersion)
	if v == schemaVersion || (readOnly && v == 1) {
		return nil
	}
	return errors.WithMessagef(errCorrupt, "schema version %d, this nsfs reads version %d", v, schemaVersion)
}

// migrate brings a store of an older schema version to schemaVersion, in
// the transaction that opens it (all or nothing).
//
// Version 1 to 2: the labels/ bucket of every namespace, blob hold and
// image, an image's blobs/ (claims) and missing/ buckets, and a content
// record's namespaces/ (holders) become flat keys "labels/<key>",
// "blobs/<digest>", "missing/<digest>", "namespaces/<ns>" of the bucket
// that held them (keyRange). Without a nested bucket, an image's data, a
// hold and a content record are small enough for bbolt to keep inline in
// their parent's page; their pages are freed and reused.
func migrate(tx *bolt.Tx, v1 *bolt.Bucket) error {
	if getUint64(v1, keyVersion) != 1 {
		return nil
	}
	namespaces := namespacesBucket(tx)
	if namespaces == nil {
		return nil // fsck says so; --repair makes it again
	}
	err := namespaces.ForEach(func(name, v []byte) error {
		nsb := namespacesBucket(tx).Bucket(name)
		if v != nil || nsb == nil {
			return nil // fsck says so
		}
		if err := flatten(nsb, bucketLabels); err != nil {
			return err
		}
		if err := forEachBucket(nsb.Bucket(bucketBlobs), func(hold *bolt.Bucket) error {
			return flatten(hold, bucketLabels)
		}); err != nil {
			return err
		}
		imageData := nsb.Bucket(bucketImageData)
		if imageData == nil {
			return nil // fsck says so; --repair makes it again
		}
		imageData.FillPercent = appendFillPercent
		return forEachBucket(imageData, func(data *bolt.Bucket) error {
			for _, name := range [][]byte{bucketLabels, bucketBlobs, bucketMissing} {
				if err := flatten(data, name); err != nil {
					return err
				}
			}
			return nil
		})
	})
	if err == nil {
		err = forEachBucket(contentBucket(tx), func(cb *bolt.Bucket) error {
			return flatten(cb, bucketHolders)
		})
	}
	if err != nil {
		return errors.WithMessage(err, "migrate schema version 1 to 2")
	}
	return putUint64(v1, keyVersion, schemaVersion)
}

// forEachBucket calls fn with every nested bucket of b (nil: none).
func forEachBucket(b *bolt.Bucket, fn func(*bolt.Bucket) error) error {
	if b == nil {
		return nil
	}
	var names [][]byte
	_ = b.ForEach(func(k, v []byte) error {
		if v == nil {
			names = append(names, append([]byte(nil), k...))
		}
		return nil
	})
	for _, k := range names {
		if err := fn(b.Bucket(k)); err != nil {
			return err
		}
	}
	return nil
}

// flatten moves parent's nested bucket name (if any) into flat keys
// "<name>/<key>" of parent. What the bucket held is kept as it was, a
// bucket nested in it too (fsck reports that).
func flatten(parent *bolt.Bucket, name []byte) error {
	nested := parent.Bucket(name)
	if nested == nil {
		return nil
	}
	flat := keyRange{parent, append(append([]byte(nil), name...), '/')}
	var keys, values [][]byte
	var buckets [][]byte
	_ = nested.ForEach(func(k, v []byte) error {
		k = append([]byte(nil), k...)
		if v == nil {
			buckets = append(buckets, k)
		} else {
			keys, values = append(keys, k), append(values, append([]byte(nil), v...))
		}
		return nil
	})
	for _, k := range buckets {
		child, err := parent.CreateBucket(flat.key(k))
		if err != nil {
			return err
		}
		if err := copyBucket(child, parent.Bucket(name).Bucket(k)); err != nil {
			return err
		}
	}
	if err := parent.DeleteBucket(name); err != nil {
		return err
	}
	for i, k := range keys {
		if err := parent.Put(flat.key(k), values[i]); err != nil {
			return err
		}
	}
	return nil
}
