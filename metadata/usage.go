package metadata

import (
	"github.com/opencontainers/go-digest"
	"github.com/pkg/errors"
	bolt "go.etcd.io/bbolt"
)

// Usage counters, ns/<ns>/held and ns/<ns>/only (int64):
// the bytes of the blobs the namespace holds, and of those no other
// namespace holds. They change in the transaction of every hold and drop
// (usageOnHold, usageOnDrop), which also checks the quota, so df, the
// CLI's listing and the quota check read two keys instead of walking the
// holds. A store from before them gets them at its first writable open
// (ensureUsage); fsck recounts and compares (checkUsage).

// startUsage gives a new namespace its counters.
func startUsage(nsb *bolt.Bucket) error {
	if err := putInt64(nsb, keyHeld, 0); err != nil {
		return err
	}
	return putInt64(nsb, keyOnly, 0)
}

// holderCount is how many namespaces hold a blob, as far as 2: the
// counters only need to know none, one or more.
func holderCount(holders keyRange) (n int, first []byte) {
	_ = holders.ForEach(func(k, _ []byte) error {
		if n++; n == 1 {
			first = append([]byte(nil), k...)
			return nil
		}
		return errStopWalk
	})
	return n, first
}

// errStopWalk ends a ForEach early.
var errStopWalk = errors.New("stop")

// checkQuota refuses a new hold of size bytes that would take namespace
// ns past its quota; it runs before hold writes anything.
func checkQuota(nsb *bolt.Bucket, ns string, d digest.Digest, size int64) error {
	q := readQuota(nsb)
	if q == NoQuota {
		return nil
	}
	held := getInt64(nsb, keyHeld)
	if held+size <= q {
		return nil
	}
	return errors.WithMessagef(ErrQuota, "namespace %q: holding blob %s (%d bytes) would bring it to %d bytes, %d over its quota of %d", ns, d, size, held+size, held+size-q, q)
}

// usageOnHold counts a new hold of size bytes by nsb; holders is the
// blob's holder set before nsb joined.
func usageOnHold(tx *bolt.Tx, nsb *bolt.Bucket, holders keyRange, size int64) error {
	if err := addInt64(nsb, keyHeld, size); err != nil {
		return err
	}
	switch n, first := holderCount(holders); n {
	case 0:
		return addInt64(nsb, keyOnly, size)
	case 1: // the one holder no longer holds it alone
		if other := namespacesBucket(tx).Bucket(first); other != nil {
			return addInt64(other, keyOnly, -size)
		}
	}
	return nil
}

// usageOnDrop counts nsb's drop of a blob of size bytes; holders is the
// blob's holder set after nsb left it.
func usageOnDrop(tx *bolt.Tx, nsb *bolt.Bucket, holders keyRange, size int64) error {
	if err := addInt64(nsb, keyHeld, -size); err != nil {
		return err
	}
	switch n, first := holderCount(holders); n {
	case 0:
		return addInt64(nsb, keyOnly, -size)
	case 1: // the one left now holds it alone
		if other := namespacesBucket(tx).Bucket(first); other != nil {
			return addInt64(other, keyOnly, size)
		}
	}
	return nil
}

// addInt64 adds delta to a counter; it never goes below 0 (a counter gone
// stale must not make a namespace look as if it had room it has not: fsck
// reports it, and fsck --repair recounts).
func addInt64(b *bolt.Bucket, key []byte, delta int64) error {
	v := getInt64(b, key) + delta
	if v < 0 {
		v = 0
	}
	return putInt64(b, key, v)
}

// countUsage counts a namespace's usage from its holds (a walk: for
// stores from before the counters, fsck and repair).
func countUsage(tx *bolt.Tx, nsb *bolt.Bucket) Usage {
	var u Usage
	content := contentBucket(tx)
	bb := nsSub(nsb, bucketBlobs)
	if bb == nil {
		return u
	}
	_ = bb.ForEachBucket(func(d []byte) error {
		size := getInt64(bb.Bucket(d), keySize)
		u.Held += size
		if n, _ := holderCount(holdersOf(content.Bucket(d))); n <= 1 {
			u.Only += size
		}
		return nil
	})
	return u
}

// ensureUsage gives every namespace of a store from before the counters
// its counters, counted once from its holds: called in the write
// transaction of every open; a namespace that has them is left alone.
func ensureUsage(tx *bolt.Tx) error {
	all := namespacesBucket(tx)
	var missing [][]byte
	_ = all.ForEachBucket(func(name []byte) error {
		if all.Bucket(name).Get(keyHeld) == nil {
			missing = append(missing, append([]byte(nil), name...))
		}
		return nil
	})
	for _, name := range missing {
		if err := writeUsage(all.Bucket(name), countUsage(tx, all.Bucket(name))); err != nil {
			return err
		}
	}
	return nil
}

// usageCurrent reports whether every namespace has its counters (Open
// writes only to a store that needs it).
func usageCurrent(tx *bolt.Tx) bool {
	all := namespacesBucket(tx)
	return all.ForEachBucket(func(name []byte) error {
		if all.Bucket(name).Get(keyHeld) == nil {
			return errCorrupt
		}
		return nil
	}) == nil
}

func writeUsage(nsb *bolt.Bucket, u Usage) error {
	if err := putInt64(nsb, keyHeld, u.Held); err != nil {
		return err
	}
	return putInt64(nsb, keyOnly, u.Only)
}

// checkUsage compares every namespace's counters with a count of its
// holds (fsck). A namespace from before the counters has none yet: its
// next writable open counts them.
func (s *fsckState) checkUsage(tx *bolt.Tx) {
	all := namespacesBucket(tx)
	_ = all.ForEachBucket(func(name []byte) error {
		nsb := all.Bucket(name)
		if nsb.Get(keyHeld) == nil {
			return nil
		}
		if got, want := readUsage(nsb), countUsage(tx, nsb); got != want {
			s.add(nsObject(string(name)), "its usage counters say %d bytes held, %d only its own, but its holds add up to %d and %d", got.Held, got.Only, want.Held, want.Only)
		}
		return nil
	})
}

// recountUsage sets every namespace's counters from its holds (fsck
// --repair).
func recountUsage(tx *bolt.Tx) error {
	all := namespacesBucket(tx)
	var list [][]byte
	_ = all.ForEachBucket(func(name []byte) error {
		list = append(list, append([]byte(nil), name...))
		return nil
	})
	for _, name := range list {
		if err := writeUsage(all.Bucket(name), countUsage(tx, all.Bucket(name))); err != nil {
			return err
		}
	}
	return nil
}

// roomLeft is what namespace nsb's quota lets it add, or NoQuota.
func roomLeft(nsb *bolt.Bucket) int64 {
	q := readQuota(nsb)
	if q == NoQuota {
		return NoQuota
	}
	return max(0, q-getInt64(nsb, keyHeld))
}

// checkRoom refuses, at the write, the bytes of a blob that cannot fit in
// what the namespace's quota left when the ingest began, so that a cp of
// a large layer fails at once rather than after it wrote it all. Commit
// checks again, in its transaction: that check is the one that counts
// (the room may have changed meanwhile). Its error is kept as the ingest's
// write error, so the close answers EDQUOT too. The caller holds w.mu.
func (w *BlobWriter) checkRoom(n int) error {
	if w.room == NoQuota || w.w.Size()+int64(n) <= w.room {
		return nil
	}
	err := errors.WithMessagef(ErrQuota, "namespace %q: blob %s does not fit in the %d bytes its quota leaves", w.ns, w.w.Expected(), w.room)
	if w.writeErr == nil {
		w.writeErr = err
	}
	return err
}

// Failed reports whether a write failed other than by its offset (a full
// disk, the quota): the ingest cannot commit, and its first close says why.
func (w *BlobWriter) Failed() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.writeErr != nil
}
