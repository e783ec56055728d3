package metadata

import (
	"fmt"
	"sort"
	"strings"

	"github.com/opencontainers/go-digest"
	"github.com/pkg/errors"
	bolt "go.etcd.io/bbolt"
)

// The shareable index, v1/shareable/<digest> -> uint64: how many
// namespaces labelled ShareableLabel=true hold the blob (no key: none).
// With it, whether a namespace can see a blob under SharingIsolated is a
// constant number of keyed reads (visible), whatever the number of
// holders: the same reads, in the same time, for a blob nobody holds and
// for one that only other, private namespaces hold, so a stat tells a
// tenant nothing of what others hold.
//
// It is kept in the transaction of every change that can alter it: hold
// and drop (a shareable namespace starts or stops holding a blob), a
// label change that turns ShareableLabel on or off for a namespace (its
// holds are counted in or out), the deletion of a namespace.

// shareableBucket is v1/shareable/, or nil in a store from before it that
// was opened read-only (ensureShareableIndex makes it at every other open).
func shareableBucket(tx *bolt.Tx) *bolt.Bucket { return root(tx).Bucket(bucketShareable) }

// isShareable reports whether a namespace is labelled ShareableLabel=true.
func isShareable(nsb *bolt.Bucket) bool {
	return string(labelsOf(nsb).Get([]byte(ShareableLabel))) == "true"
}

// heldByShareable reports whether some namespace labelled shareable holds
// d: one keyed read of the index. Without the index (a read-only open of a
// store from before it) the holders are walked.
func heldByShareable(tx *bolt.Tx, d digest.Digest) bool {
	if sb := shareableBucket(tx); sb != nil {
		return getUint64(sb, []byte(d)) > 0
	}
	cb := contentBucket(tx).Bucket([]byte(d))
	if cb == nil {
		return false
	}
	all := namespacesBucket(tx)
	found := false
	_ = holdersOf(cb).ForEach(func(k, _ []byte) error {
		if nsb := all.Bucket(k); nsb != nil && isShareable(nsb) {
			found = true
			return errStopWalk
		}
		return nil
	})
	return found
}

// countShareable adds delta (+1 or -1) to d's count; a count that reaches
// 0 leaves no key. A count that would go below 0 (an index gone stale by a
// change outside these paths) stays at 0: the index must never block a
// write; checkShareableIndex finds the staleness, rebuildShareableIndex
// cures it.
func countShareable(tx *bolt.Tx, d digest.Digest, delta int) error {
	sb := shareableBucket(tx)
	if sb == nil {
		return errors.WithMessage(errCorrupt, "bucket shareable/ is missing")
	}
	n := int64(getUint64(sb, []byte(d))) + int64(delta)
	if n <= 0 {
		return sb.Delete([]byte(d))
	}
	return putUint64(sb, []byte(d), uint64(n))
}

// countHolds counts every blob namespace nsb holds in (+1) or out (-1) of
// the index: nsb was labelled shareable, or stopped being.
func countHolds(tx *bolt.Tx, nsb *bolt.Bucket, delta int) error {
	bb := nsSub(nsb, bucketBlobs)
	if bb == nil {
		return nil
	}
	var held []digest.Digest
	_ = bb.ForEachBucket(func(k []byte) error {
		held = append(held, digest.Digest(k))
		return nil
	})
	for _, d := range held {
		if err := countShareable(tx, d, delta); err != nil {
			return err
		}
	}
	return nil
}

// shareableChanged updates the index after a change of namespace nsb's
// labels, given whether it was shareable before.
func shareableChanged(tx *bolt.Tx, nsb *bolt.Bucket, was bool) error {
	switch now := isShareable(nsb); {
	case now && !was:
		return countHolds(tx, nsb, +1)
	case was && !now:
		return countHolds(tx, nsb, -1)
	}
	return nil
}

// ensureShareableIndex builds the index once in a store from before it:
// called in the write transaction of every open; idempotent.
func ensureShareableIndex(tx *bolt.Tx) error {
	if shareableBucket(tx) != nil {
		return nil
	}
	return rebuildShareableIndex(tx)
}

// rebuildShareableIndex recounts the index from the holds (fsck --repair
// can call it after it changes holds directly).
func rebuildShareableIndex(tx *bolt.Tx) error {
	if shareableBucket(tx) != nil {
		if err := root(tx).DeleteBucket(bucketShareable); err != nil {
			return err
		}
	}
	sb, err := root(tx).CreateBucket(bucketShareable)
	if err != nil {
		return err
	}
	for d, n := range recountShareable(tx) {
		if err := putUint64(sb, []byte(d), n); err != nil {
			return err
		}
	}
	return nil
}

// recountShareable counts, from the holds, how many shareable namespaces
// hold each blob.
func recountShareable(tx *bolt.Tx) map[digest.Digest]uint64 {
	counts := map[digest.Digest]uint64{}
	all := namespacesBucket(tx)
	_ = all.ForEachBucket(func(name []byte) error {
		nsb := all.Bucket(name)
		if !isShareable(nsb) {
			return nil
		}
		if bb := nsSub(nsb, bucketBlobs); bb != nil {
			_ = bb.ForEachBucket(func(k []byte) error {
				counts[digest.Digest(k)]++
				return nil
			})
		}
		return nil
	})
	return counts
}

// checkShareableIndex compares the index with a recount from the holds;
// the error lists the digests whose counts differ (fsck can call it).
func checkShareableIndex(tx *bolt.Tx) error {
	sb := shareableBucket(tx)
	if sb == nil {
		return errors.WithMessage(errCorrupt, "bucket shareable/ is missing")
	}
	want := recountShareable(tx)
	var wrong []string
	_ = sb.ForEach(func(k, v []byte) error {
		d := digest.Digest(k)
		if got := decodeUint64(v); v == nil || len(v) != 8 || got != want[d] {
			wrong = append(wrong, fmt.Sprintf("%s: %d recorded, %d shareable holders", d, got, want[d]))
		}
		return nil
	})
	for d, n := range want {
		if !hasKey(sb, []byte(d)) {
			wrong = append(wrong, fmt.Sprintf("%s: not recorded, %d shareable holders", d, n))
		}
	}
	if len(wrong) > 0 {
		sort.Strings(wrong)
		return errors.WithMessagef(errCorrupt, "the shareable index disagrees with the holds: %s", strings.Join(wrong, "; "))
	}
	return nil
}
