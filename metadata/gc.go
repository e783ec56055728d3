package metadata

import (
	"sort"
	"time"

	"github.com/nsfs/nsfs/blobs"
	"github.com/opencontainers/go-digest"
	"github.com/pkg/errors"
	bolt "go.etcd.io/bbolt"
)

// GCOptions choose what CollectGarbage removes.
type GCOptions struct {
	// Grace spares garbage modified less than Grace ago: an ingest is
	// removed only once its file was last written more than Grace ago (a
	// pull in progress keeps writing, so it is never collected), and a
	// blob file no record names only once it is older than Grace. Zero
	// removes all garbage: right only when no writer can be running (a
	// mount about to serve, nsfs gc of an unmounted store), since an
	// ingest being written is then taken too.
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

// CollectGarbage removes blob files that no content record names (a crash
// between publishing a file and committing its record, or between dropping
// the last holder and deleting the file, leaves one; so does a failed
// delete) and ingests whose writers never committed nor aborted, when they
// were last modified more than opts.Grace ago. Records are never changed.
//
// It never blocks requests for long: the candidates are found by walking
// the directories and one read transaction, and each blob file is then
// re-checked and deleted under the lock its digest's publishers take
// (doc.go, "Files and records"), one at a time; nothing is hashed, no
// write transaction is taken. An ingest's modification time is looked at
// again just before it is removed.
func (db *DB) CollectGarbage(opts GCOptions) (GCStats, error) {
	var stats GCStats
	cutoff := time.Now().Add(-opts.Grace)
	if opts.Grace <= 0 {
		cutoff = time.Time{} // everything
	}
	if err := db.collectBlobs(cutoff, &stats); err != nil {
		return stats, err
	}
	return stats, db.collectIngests(cutoff, &stats)
}

// olderThan reports whether a file last modified at mtime is garbage by
// cutoff (the zero cutoff: everything is).
func olderThan(mtime, cutoff time.Time) bool {
	return cutoff.IsZero() || mtime.Before(cutoff)
}

// collectBlobs removes the blob files modified before cutoff that no
// content record names.
func (db *DB) collectBlobs(cutoff time.Time, stats *GCStats) error {
	var candidates []blobs.Info
	if err := db.blobs.Walk(func(info blobs.Info) error {
		if olderThan(info.ModTime, cutoff) {
			candidates = append(candidates, info)
		}
		return nil
	}); err != nil {
		return errors.WithMessage(err, "garbage collection: walk blobs")
	}
	if len(candidates) > 0 {
		if err := db.bolt.View(func(tx *bolt.Tx) error {
			content := contentBucket(tx)
			kept := candidates[:0]
			for _, info := range candidates {
				if content.Bucket([]byte(info.Digest)) == nil {
					kept = append(kept, info)
				}
			}
			candidates = kept
			return nil
		}); err != nil {
			return errors.WithMessage(err, "garbage collection")
		}
	}
	sort.Slice(candidates, func(i, j int) bool { return candidates[i].Digest < candidates[j].Digest })
	for _, info := range candidates {
		removed, err := db.removeUnrecorded(info.Digest)
		if err != nil {
			return err
		}
		if !removed {
			continue
		}
		stats.Blobs++
		stats.Bytes += info.Size
		stats.Removed = append(stats.Removed, Garbage{Path: blobFile(info.Digest), Size: info.Size, ModTime: info.ModTime})
	}
	return nil
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
		stats.Removed = append(stats.Removed, Garbage{Path: "ingest/" + info.Name, Size: info.Size, ModTime: info.ModTime})
	}
	return nil
}

// removeUnrecorded deletes blob d's file if, under the lock its
// publishers hold from the file's rename to their commit, no content
// record names it. It reports whether it deleted the file.
func (db *DB) removeUnrecorded(d digest.Digest) (bool, error) {
	unlock := db.lockContent(d)
	defer unlock()
	return db.removeUnrecordedLocked(d)
}

// removeUnrecordedLocked is removeUnrecorded for a caller that holds d's
// content lock (a writer whose record did not commit).
func (db *DB) removeUnrecordedLocked(d digest.Digest) (bool, error) {
	recorded := false
	if err := db.bolt.View(func(tx *bolt.Tx) error {
		recorded = contentBucket(tx).Bucket([]byte(d)) != nil
		return nil
	}); err != nil {
		return false, errors.WithMessage(err, "garbage collection")
	}
	if recorded {
		return false, nil
	}
	if _, err := db.blobs.Stat(d); err != nil {
		return false, nil // deleted meanwhile
	}
	if err := db.blobs.Delete(d); err != nil {
		return false, errors.WithMessagef(err, "garbage collection: delete blob file %s", blobFile(d))
	}
	return true, nil
}
