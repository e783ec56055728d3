package metadata

import (
	"github.com/opencontainers/go-digest"
	"github.com/pkg/errors"
	bolt "go.etcd.io/bbolt"
)

// Incomplete images. An image may name blobs its namespace cannot see yet
// (containerd's rule: an image does not need its content), so that a
// backup restores in any order: tar lists images/ before blobs/. Such a
// blob is *missing* from the image: the image records it with the size
// its manifest names, and claims it (the namespace holds it) in the
// transaction that makes it visible to the namespace: the namespace
// writes it, or, under shared content, any namespace does, or, under
// isolated content, a namespace holding it is labelled shareable. Naming a
// digest never grants a read of it: what the namespace cannot see stays
// missing.
//
// Schema (doc.go):
//
//	nsdata/<ns id>/imagedata/<id>/
//	  missing/<digest> -> int64      a blob the image names and does not claim
//	                                 yet, with the size its manifest names
//	wanted/
//	  <digest>/                      the images missing the blob, by
//	    <ns>/                        namespace: an index, so that the arrival
//	      <id> -> ""                 of a blob nobody misses costs one keyed
//	                                 read
var (
	bucketMissing = []byte("missing") // schema version 1's bucket (migrate.go)
	bucketWanted  = []byte("wanted")
)

// missingSet lists the blobs an image (its imagedata bucket) misses, with
// the sizes its manifest names.
func missingSet(data *bolt.Bucket) map[digest.Digest]int64 {
	mb := missingOf(data)
	if mb.empty() {
		return nil
	}
	set := map[digest.Digest]int64{}
	_ = mb.ForEach(func(k, v []byte) error {
		set[digest.Digest(k)] = int64(decodeUint64(v))
		return nil
	})
	return set
}

// putMissing records what image id of ns (its imagedata bucket data)
// misses, in the image and in the wanted index.
func putMissing(tx *bolt.Tx, ns string, data *bolt.Bucket, id uint64, missing map[digest.Digest]int64) error {
	if len(missing) == 0 {
		return nil
	}
	mb := missingOf(data)
	for d, size := range missing {
		if err := mb.Put([]byte(d), encodeUint64(uint64(size))); err != nil {
			return err
		}
	}
	return indexMissing(tx, ns, id, missing)
}

// indexMissing adds the missing blobs of image id of ns to the wanted
// index.
func indexMissing(tx *bolt.Tx, ns string, id uint64, missing map[digest.Digest]int64) error {
	if len(missing) == 0 {
		return nil
	}
	wb, err := root(tx).CreateBucketIfNotExists(bucketWanted)
	if err != nil {
		return err
	}
	for d := range missing {
		byNS, err := wb.CreateBucketIfNotExists([]byte(d))
		if err != nil {
			return err
		}
		ib, err := byNS.CreateBucketIfNotExists([]byte(ns))
		if err != nil {
			return err
		}
		if err := ib.Put(encodeUint64(id), member); err != nil {
			return err
		}
	}
	return nil
}

// clearMissing forgets what image id of ns (data) misses: its missing set
// and its entries in the wanted index (a replace or a delete of the
// image).
func clearMissing(tx *bolt.Tx, ns string, data *bolt.Bucket, id uint64) error {
	missing := missingSet(data)
	if missing == nil {
		return nil
	}
	if err := missingOf(data).clear(); err != nil {
		return err
	}
	for d := range missing {
		if err := unwant(tx, ns, d, id); err != nil {
			return err
		}
	}
	return nil
}

// unwant removes image id of ns from the wanted index of d.
func unwant(tx *bolt.Tx, ns string, d digest.Digest, id uint64) error {
	wb := root(tx).Bucket(bucketWanted)
	if wb == nil {
		return nil
	}
	byNS := wb.Bucket([]byte(d))
	if byNS == nil {
		return nil
	}
	ib := byNS.Bucket([]byte(ns))
	if ib == nil {
		return nil
	}
	if err := ib.Delete(encodeUint64(id)); err != nil {
		return err
	}
	if !isEmptyBucket(ib) {
		return nil
	}
	if err := byNS.DeleteBucket([]byte(ns)); err != nil {
		return err
	}
	if isEmptyBucket(byNS) {
		return wb.DeleteBucket([]byte(d))
	}
	return nil
}

// claimArrived makes the images that miss blob d (size bytes) claim it,
// in every namespace that can see it now: called in the transaction that
// made it visible to some (a hold of a new blob, a namespace turned
// shareable). An image whose manifest named another size keeps missing
// it (fsck reports it).
func (db *DB) claimArrived(tx *bolt.Tx, d digest.Digest, size int64) error {
	wb := root(tx).Bucket(bucketWanted)
	if wb == nil || wb.Bucket([]byte(d)) == nil {
		return nil // the common case: nobody misses it
	}
	var wanting []string
	_ = wb.Bucket([]byte(d)).ForEachBucket(func(k []byte) error {
		wanting = append(wanting, string(k))
		return nil
	})
	all := namespacesBucket(tx)
	for _, ns := range wanting {
		nsb := all.Bucket([]byte(ns))
		if _, ok := db.visible(tx, ns, d); !ok || nsb == nil {
			continue
		}
		if err := claimWanted(tx, nsb, ns, d, size); err != nil {
			return err
		}
	}
	return nil
}

// claimWanted makes the images of ns (nsb) that miss d claim it.
func claimWanted(tx *bolt.Tx, nsb *bolt.Bucket, ns string, d digest.Digest, size int64) error {
	ib := root(tx).Bucket(bucketWanted).Bucket([]byte(d)).Bucket([]byte(ns))
	var ids []uint64
	_ = ib.ForEach(func(k, _ []byte) error {
		ids = append(ids, decodeUint64(k))
		return nil
	})
	t := now()
	for _, id := range ids {
		data := nsSub(nsb, bucketImageData).Bucket(encodeUint64(id))
		mb := missingOf(data)
		if mb.Get([]byte(d)) == nil {
			// A stale entry (a repair removed the image): only the index
			// says it.
			if err := unwant(tx, ns, d, id); err != nil {
				return err
			}
			continue
		}
		if int64(decodeUint64(mb.Get([]byte(d)))) != size {
			continue // a lying size: the image stays incomplete
		}
		// Claimed first: a namespace the blob would take past its quota
		// keeps missing it (nothing changed), and the transaction that
		// made it visible, another namespace's, goes on.
		if err := claim(tx, nsb, ns, d, size, t); err != nil {
			if errors.Is(err, ErrQuota) {
				continue
			}
			return err
		}
		if err := mb.Delete([]byte(d)); err != nil {
			return err
		}
		if err := claimsOf(data).Put([]byte(d), member); err != nil {
			return err
		}
		if err := unwant(tx, ns, d, id); err != nil {
			return err
		}
	}
	return nil
}

// claimHeldBy is claimArrived for the blobs namespace nsb holds: it was
// labelled shareable, so every namespace under isolated content (the
// mount's policy or its own trusted.nsfs.sharing) sees them now. It looks only at what images miss (the wanted indexes), which is
// usually little, not at everything the namespace holds.
func (db *DB) claimHeldBy(tx *bolt.Tx, nsb *bolt.Bucket) error {
	wb := root(tx).Bucket(bucketWanted)
	if wb == nil {
		return nil
	}
	arrived := map[digest.Digest]int64{}
	_ = wb.ForEachBucket(func(d []byte) error {
		if rec := heldBlob(nsb, digest.Digest(d)); rec != nil {
			arrived[digest.Digest(d)] = getInt64(rec, keySize)
		}
		return nil
	})
	for _, d := range sortedKeysOf(arrived) {
		if err := db.claimArrived(tx, d, arrived[d]); err != nil {
			return err
		}
	}
	return nil
}

// sortedKeysOf returns the digests of m in order (a deterministic
// transaction).
func sortedKeysOf(m map[digest.Digest]int64) []digest.Digest {
	ds := make([]digest.Digest, 0, len(m))
	for d := range m {
		ds = append(ds, d)
	}
	sortDigests(ds)
	return ds
}

// holdToLabel makes namespace nsb hold blob o.Blob, which it can see, so
// that a label can be set on it (LabelStore.Set).
func (db *DB) holdToLabel(tx *bolt.Tx, nsb *bolt.Bucket, o Object) (*bolt.Bucket, func() error, error) {
	size, _ := db.visible(tx, o.Namespace, o.Blob)
	newHold := heldBlob(nsb, o.Blob) == nil
	rec, err := hold(tx, nsb, o.Namespace, o.Blob, size, now())
	if err == nil {
		err = db.shareableHoldArrived(tx, nsb, o.Blob, size, newHold)
	}
	return rec, func() error { return nil }, err
}

// shareableHoldArrived follows a hold of blob d by namespace nsb made
// without its bytes being written (an image's claim, a label): when the
// hold is new and nsb is labelled shareable, namespaces under isolated
// content see d now, and their images that miss it claim it.
func (db *DB) shareableHoldArrived(tx *bolt.Tx, nsb *bolt.Bucket, d digest.Digest, size int64, newHold bool) error {
	if !newHold || !isShareable(nsb) {
		return nil
	}
	return db.claimArrived(tx, d, size)
}

// claimNowVisible makes the images of namespace ns (nsb) that miss blobs
// claim those it may claim now: called when root changed a setting of ns
// (its sharing turned shared, its quota rose or went).
func (db *DB) claimNowVisible(tx *bolt.Tx, ns string, nsb *bolt.Bucket) error {
	wb := root(tx).Bucket(bucketWanted)
	if wb == nil {
		return nil
	}
	sizes := map[digest.Digest]int64{}
	_ = wb.ForEachBucket(func(d []byte) error {
		if wb.Bucket(d).Bucket([]byte(ns)) == nil {
			return nil
		}
		if size, ok := db.visible(tx, ns, digest.Digest(d)); ok {
			sizes[digest.Digest(d)] = size
		}
		return nil
	})
	for _, d := range sortedKeysOf(sizes) {
		if err := claimWanted(tx, nsb, ns, d, sizes[d]); err != nil {
			return err
		}
	}
	return nil
}
