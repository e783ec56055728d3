package metadata

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/nsfs/nsfs/blobs"
	"github.com/nsfs/nsfs/names"
	"github.com/opencontainers/go-digest"
	"github.com/pkg/errors"
	bolt "go.etcd.io/bbolt"
)

// GCOptions choose what CollectGarbage removes.
type GCOptions struct {
	// Grace spares ingests modified less than Grace ago: an ingest is
	// removed only once its file was last written more than Grace ago (a
	// pull in progress keeps writing, so it is never collected). Zero
	// removes every ingest: right only when no writer can be running (a
	// mount about to serve, nsfs gc of an unmounted store). Blob files
	// need no grace: their garbage is proven by records (unheld/), under
	// the lock their writers hold.
	Grace time.Duration
}

// GCStats says what CollectGarbage removed.
type GCStats struct {
	Blobs   int // blob files no namespace held
	Ingests int // unfinished ingests
	Bytes   int64
	// Removed lists each removal, paths relative to the store's root
	// ("blobs/sha256/<hex>", "ingest/<name>").
	Removed []Garbage
}

// Garbage is one file CollectGarbage removed.
type Garbage struct {
	Path    string // relative to the root
	Size    int64
	ModTime time.Time // its last write
}

// CollectGarbage removes the blob files this store can prove are garbage
// and the ingests whose writers never committed nor aborted, when they
// were last modified more than opts.Grace ago. A blob file is garbage when
// an unheld/ entry names it (the intent its writer recorded before the
// publishing rename, or the tombstone of the transaction that dropped its
// last holder) and no content record does; the entries it settles are
// removed too. A blob file that no record at all names is never removed:
// nothing proves it is not someone's data (doc.go, "Files and records").
//
// It never blocks requests for long: blob files are re-checked and deleted
// under the content lock their publishers take, one stripe of locks at a
// time, with one write transaction per stripe that clears the settled
// entries; nothing is hashed. An ingest's modification time is looked at
// again just before it is removed.
func (db *DB) CollectGarbage(opts GCOptions) (GCStats, error) {
	var stats GCStats
	cutoff := time.Now().Add(-opts.Grace)
	if opts.Grace <= 0 {
		cutoff = time.Time{} // everything
	}
	if err := db.collectBlobs(&stats); err != nil {
		return stats, err
	}
	err := db.collectIngests(cutoff, &stats)
	db.collectCompactLeftover(&stats)
	if stats.Bytes > 0 {
		// Room again, perhaps: a reserve a full disk used comes back.
		db.restoreReserve()
	}
	return stats, err
}

// RemoveIngests removes every unfinished ingest of the store, for a
// mount whose server has stopped: nothing writes them any more (the
// store's lock keeps every other process out), and what they were, a
// temporary file in blobs/sha256 or a scratch file, a remount forgets.
func (db *DB) RemoveIngests() (GCStats, error) {
	var stats GCStats
	err := db.collectIngests(time.Time{}, &stats)
	return stats, err
}

// removeIngestsReported is RemoveIngests for a repair: one line per
// ingest it removed.
func (db *DB) removeIngestsReported() ([]string, error) {
	stats, err := db.RemoveIngests()
	var lines []string
	for _, g := range stats.Removed {
		lines = append(lines, fmt.Sprintf("removed unfinished ingest %s (%d bytes)", g.Path, g.Size))
	}
	return lines, err
}

// olderThan reports whether a file last modified at mtime is garbage by
// cutoff (the zero cutoff: everything is).
func olderThan(mtime, cutoff time.Time) bool {
	return cutoff.IsZero() || mtime.Before(cutoff)
}

// collectBlobs removes the blob files unheld/ names and no content record
// does, and clears the unheld/ entries that no longer say anything.
func (db *DB) collectBlobs(stats *GCStats) error {
	var stripes [contentLockStripes][]digest.Digest
	if err := db.bolt.View(func(tx *bolt.Tx) error {
		unheld := unheldBucket(tx)
		if unheld == nil {
			return nil
		}
		return unheld.ForEach(func(k, _ []byte) error {
			// A key that is no digest is damage fsck reports; it names
			// no file gc could remove.
			if d := digest.Digest(k); names.ValidateDigest(d) == nil {
				stripes[contentStripe(d)] = append(stripes[contentStripe(d)], d)
			}
			return nil
		})
	}); err != nil {
		return errors.WithMessage(err, "garbage collection")
	}
	for i := range stripes {
		if len(stripes[i]) == 0 {
			continue
		}
		if err := db.collectStripe(i, stripes[i], stats); err != nil {
			return err
		}
	}
	return nil
}

// collectStripe is collectBlobs for the digests of one content lock stripe,
// all under that lock.
func (db *DB) collectStripe(stripe int, ds []digest.Digest, stats *GCStats) error {
	mu := &db.contentLocks[stripe]
	mu.Lock()
	defer mu.Unlock()
	sortDigests(ds)
	var settled []digest.Digest
	for _, d := range ds {
		outcome, info, err := db.collectLocked(d)
		if err != nil {
			return err
		}
		switch outcome {
		case garbageRemoved:
			stats.Blobs++
			stats.Bytes += info.Size
			stats.Removed = append(stats.Removed, Garbage{Path: blobs.RelPath(d), Size: info.Size, ModTime: info.ModTime})
			settled = append(settled, d)
		case garbageHeld, garbageGone:
			settled = append(settled, d)
		}
	}
	if len(settled) == 0 {
		return nil
	}
	// The deletes are durable before their records go, or a power cut
	// could bring back a file no record names (which the mount refuses).
	if err := db.blobs.SyncDeletes(); err != nil {
		return errors.WithMessage(err, "garbage collection")
	}
	// Still under the lock: a writer of one of these digests cannot have
	// recorded a new intent in between.
	return errors.WithMessage(db.updateFreeing(func(tx *bolt.Tx) error {
		unheld := unheldBucket(tx)
		for _, d := range settled {
			if err := unheld.Delete([]byte(d)); err != nil {
				return err
			}
		}
		return nil
	}), "garbage collection: clear unheld records")
}

// garbageOutcome is what collectLocked found and did.
type garbageOutcome int

const (
	garbageUnproven garbageOutcome = iota // no unheld/ entry: nothing is done
	garbageHeld                           // a content record names it again: kept
	garbageGone                           // no file (any more)
	garbageRemoved                        // the file was deleted
)

// collectLocked deletes blob d's file when an unheld/ entry names it and
// no content record does. The caller holds d's content lock.
func (db *DB) collectLocked(d digest.Digest) (garbageOutcome, blobs.Info, error) {
	held, unheld := false, false
	if err := db.bolt.View(func(tx *bolt.Tx) error {
		held = contentBucket(tx).Bucket([]byte(d)) != nil
		if b := unheldBucket(tx); b != nil {
			unheld = b.Get([]byte(d)) != nil
		}
		return nil
	}); err != nil {
		return garbageUnproven, blobs.Info{}, errors.WithMessage(err, "garbage collection")
	}
	switch {
	case held:
		return garbageHeld, blobs.Info{}, nil
	case !unheld:
		return garbageUnproven, blobs.Info{}, nil
	}
	info, err := db.blobs.Stat(d)
	if errors.Is(err, os.ErrNotExist) {
		return garbageGone, blobs.Info{}, nil
	}
	if err != nil {
		return garbageUnproven, blobs.Info{}, errors.WithMessagef(err, "garbage collection: blob file %s", blobs.RelPath(d))
	}
	if !info.Mode.IsRegular() {
		// Planted (a link, a fifo): not this store's file to delete;
		// fsck reports it.
		return garbageUnproven, blobs.Info{}, nil
	}
	if err := db.blobs.Delete(d); err != nil {
		return garbageUnproven, blobs.Info{}, errors.WithMessagef(err, "garbage collection: delete blob file %s", blobs.RelPath(d))
	}
	return garbageRemoved, info, nil
}

// removeGarbage deletes blob d's file if, under the lock its publishers
// hold from their intent to their commit, it is provably garbage
// (collectLocked). It reports whether it deleted the file; the unheld/
// entry stays for the next collection to clear.
func (db *DB) removeGarbage(d digest.Digest) (bool, error) {
	unlock := db.lockContent(d)
	defer unlock()
	outcome, _, err := db.collectLocked(d)
	return outcome == garbageRemoved, err
}

// abandonLocked undoes a publish whose holding transaction failed: the
// file goes if no record holds it, and so does the intent, so that a
// refused write leaves the store as it was. The caller holds d's content
// lock; a failure leaves both for gc.
func (db *DB) abandonLocked(d digest.Digest) {
	outcome, _, err := db.collectLocked(d)
	if err != nil || (outcome != garbageRemoved && outcome != garbageGone) {
		return
	}
	if db.blobs.SyncDeletes() != nil {
		return // the intent stays, and gc finishes the job
	}
	_ = db.batch(func(tx *bolt.Tx) error {
		if contentBucket(tx).Bucket([]byte(d)) != nil {
			return nil
		}
		return unheldBucket(tx).Delete([]byte(d))
	})
}

// intendLocked records, before blob d's file is published, that this
// store is about to write it: should the record that holds it never
// commit, the file is provably garbage. Nothing is written when a content
// record or an unheld/ entry already names d. The caller holds d's content
// lock until its holding transaction has committed.
func (db *DB) intendLocked(d digest.Digest) error {
	named := false
	if err := db.bolt.View(func(tx *bolt.Tx) error {
		named = contentBucket(tx).Bucket([]byte(d)) != nil
		if b := unheldBucket(tx); b != nil && b.Get([]byte(d)) != nil {
			named = true
		}
		return nil
	}); err != nil {
		return err
	}
	if named {
		return nil
	}
	return db.batch(func(tx *bolt.Tx) error { return markUnheld(tx, d) })
}

// markUnheld records that this store may have a file of blob d that no
// namespace holds.
func markUnheld(tx *bolt.Tx, d digest.Digest) error {
	return putTime(unheldBucket(tx), []byte(d), now())
}

// collectIngests removes the ingest files last written before cutoff.
func (db *DB) collectIngests(cutoff time.Time, stats *GCStats) error {
	var stale []blobs.IngestInfo
	if err := db.blobs.WalkIngests(func(info blobs.IngestInfo) error {
		if olderThan(info.ModTime, cutoff) {
			stale = append(stale, info)
		}
		return nil
	}); err != nil {
		return errors.WithMessage(err, "garbage collection: walk ingests")
	}
	sort.Slice(stale, func(i, j int) bool { return stale[i].Name < stale[j].Name })
	for _, info := range stale {
		if !cutoff.IsZero() {
			// Written again since the walk: a writer is alive after all.
			e, err := db.blobs.StatIngest(info.Name)
			if err != nil || !e.Mode.IsRegular() || !olderThan(e.ModTime, cutoff) {
				continue
			}
			info.Size, info.ModTime = e.Size, e.ModTime
		}
		if err := db.blobs.RemoveIngest(info.Name); err != nil {
			return errors.WithMessagef(err, "garbage collection: remove ingest %s", info.Name)
		}
		stats.Ingests++
		stats.Bytes += info.Size
		stats.Removed = append(stats.Removed, Garbage{Path: blobs.IngestRelPath(info.Name), Size: info.Size, ModTime: info.ModTime})
	}
	return nil
}

// CompactLeftover is the path, relative to the root, of the copy a killed
// nsfs gc --compact left behind (Compact).
const CompactLeftover = "meta.db.compact"

// collectCompactLeftover removes the copy of meta.db a killed Compact
// left: no Compact can be running, this store holding meta.db's lock
// (Compact holds it from before it creates the copy until the copy is
// renamed or removed).
func (db *DB) collectCompactLeftover(stats *GCStats) {
	path := filepath.Join(db.root, CompactLeftover)
	fi, err := os.Lstat(path)
	if err != nil || !fi.Mode().IsRegular() {
		return
	}
	if os.Remove(path) == nil {
		stats.Bytes += fi.Size()
		stats.Removed = append(stats.Removed, Garbage{Path: CompactLeftover, Size: fi.Size(), ModTime: fi.ModTime()})
	}
}
