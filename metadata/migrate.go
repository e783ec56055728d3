package metadata

import (
	"bytes"

	"github.com/pkg/errors"
	bolt "go.etcd.io/bbolt"
)

// checkVersion refuses a schema version this nsfs cannot read: a newer
// one, or (writable) an older one it has not migrated. A store opened
// read-only is read as it is: version 1's nested buckets through
// keyRange.legacy, version 1's and 2's v1/namespaces/ through
// namespaceSet.
func checkVersion(v1 *bolt.Bucket, readOnly bool) error {
	v := getUint64(v1, keyVersion)
	if v == schemaVersion || (readOnly && (v == 1 || v == 2)) {
		return nil
	}
	return errors.WithMessagef(errCorrupt, "schema version %d, this nsfs reads version %d", v, schemaVersion)
}

// migrate brings a store of an older schema version to schemaVersion, in
// the transaction that opens it (all or nothing): version 1 to 2, then 2
// to 3 (migrate2to3).
//
// Version 1 to 2: the labels/ bucket of every namespace, blob hold and
// image, an image's blobs/ (claims) and missing/ buckets, and a content
// record's namespaces/ (holders) become flat keys "labels/<key>",
// "blobs/<digest>", "missing/<digest>", "namespaces/<ns>" of the bucket
// that held them (keyRange). Without a nested bucket, an image's data, a
// hold and a content record are small enough for bbolt to keep inline in
// their parent's page; their pages are freed and reused.
func migrate(tx *bolt.Tx, v1 *bolt.Bucket) error {
	if getUint64(v1, keyVersion) == 1 {
		if err := migrate1to2(tx, v1); err != nil {
			return err
		}
	}
	if getUint64(v1, keyVersion) == 2 {
		return migrate2to3(tx, v1)
	}
	return nil
}

// migrate1to2 is migrate's version 1 to 2.
func migrate1to2(tx *bolt.Tx, v1 *bolt.Bucket) error {
	namespaces := namespacesBucket(tx)
	err := namespaces.ForEach(func(name, v []byte) error {
		nsb := namespacesBucket(tx).Bucket(name)
		if v != nil || nsb == nil {
			return nil // fsck says so
		}
		if err := flatten(nsb, bucketLabels); err != nil {
			return err
		}
		if err := forEachBucket(nsSub(nsb, bucketBlobs), func(hold *bolt.Bucket) error {
			return flatten(hold, bucketLabels)
		}); err != nil {
			return err
		}
		imageData := nsSub(nsb, bucketImageData)
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
	return putUint64(v1, keyVersion, 2)
}

// migrate2to3 is migrate's version 2 to 3 (nstop.go): the keys of every
// v1/namespaces/<name>/ become its record ns/<name>/, its nested buckets
// its data nsdata/<id>/ (images/ and imagedata/ filled densely, as
// fillDense fills them); v1/'s sequence, the ID counter, becomes nsdir/'s,
// and v1/dirtimes/ns (ns/'s times) nsdir/'s key times. A store already in
// that shape (a repair set its lost version to 1) keeps its nsdir/.
func migrate2to3(tx *bolt.Tx, v1 *bolt.Bucket) error {
	err := func() error {
		if tx.Bucket(bucketNSDir) == nil {
			nsdir, err := tx.CreateBucket(bucketNSDir)
			if err != nil {
				return err
			}
			if err := nsdir.SetSequence(v1.Sequence()); err != nil {
				return err
			}
			if t, ok := getDirTimes(v1, string(keyNamespaces)); ok {
				if err := nsdir.Put(keyTimes, encodeTimes(t)); err != nil {
					return err
				}
			}
		}
		if tx.Bucket(noData) == nil {
			if _, err := createData(tx, noDataID); err != nil {
				return err
			}
		}
		if err := v1.SetSequence(0); err != nil {
			return err
		}
		if v1.Bucket(bucketDirTimes) != nil {
			if err := v1.DeleteBucket(bucketDirTimes); err != nil {
				return err
			}
		}
		legacy := v1.Bucket(bucketNamespaces)
		if legacy == nil {
			return nil
		}
		err := legacy.ForEach(func(name, v []byte) error {
			src := legacy.Bucket(name)
			if v != nil || src == nil {
				return nil // a key where a namespace should be: nothing to move
			}
			rec, err := tx.CreateBucket(namespaceKey(name))
			if err != nil {
				return errors.WithMessagef(err, "namespace %q", shorten(string(name)))
			}
			return errors.WithMessagef(splitNamespace(tx, rec, src), "namespace %q", shorten(string(name)))
		})
		if err != nil {
			return err
		}
		return v1.DeleteBucket(bucketNamespaces)
	}()
	if err != nil {
		return errors.WithMessage(err, "migrate schema version 2 to 3")
	}
	return putUint64(v1, keyVersion, 3)
}

// splitNamespace copies the keys of version 2's namespace bucket src into
// its new record rec, and its nested buckets into its new data bucket,
// named by its ID, images/ and imagedata/ filled to appendFillPercent. A
// namespace without an ID of its own (damage fsck would report) takes a
// new one from the sequence, as fsck --repair gives it, rather than lose
// its data or share another's.
func splitNamespace(tx *bolt.Tx, rec, src *bolt.Bucket) error {
	id := append([]byte(nil), src.Get(keyID)...)
	if len(id) != 8 || decodeUint64(id) == 0 || tx.Bucket(dataKey(id)) != nil {
		n, err := nextID(tx)
		if err != nil {
			return err
		}
		id = encodeUint64(n)
	}
	data, err := tx.CreateBucket(dataKey(id))
	if err != nil {
		return err
	}
	err = src.ForEach(func(k, v []byte) error {
		k = append([]byte(nil), k...)
		nested := src.Bucket(k)
		if nested == nil {
			return rec.Put(k, append([]byte{}, v...))
		}
		child, err := data.CreateBucket(k)
		if err != nil {
			return err
		}
		if bytes.Equal(k, bucketImages) || bytes.Equal(k, bucketImageData) {
			child.FillPercent = appendFillPercent
		}
		return copyBucket(child, nested)
	})
	if err != nil {
		return err
	}
	return rec.Put(keyID, id)
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
