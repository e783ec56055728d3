package metadata

import (
	"time"

	"github.com/nsfs/nsfs/blobs"
	"github.com/opencontainers/go-digest"
	"github.com/pkg/errors"
	bolt "go.etcd.io/bbolt"
)

// GCStats says what CollectGarbage removed.
type GCStats struct {
	Blobs   int // blob files no namespace held (left by a crash)
	Ingests int // unfinished ingests older than the grace period
}

// CollectGarbage removes blob files that no content record names (a crash
// between publishing a file and committing its record, or between dropping
// the last holder and deleting the file, leaves one) and ingest files last
// written more than ingestGrace ago (writers that never committed nor
// aborted). Records are never changed.
func (db *DB) CollectGarbage(ingestGrace time.Duration) (GCStats, error) {
	var stats GCStats
	db.contentMu.Lock()
	defer db.contentMu.Unlock()

	var files []digest.Digest
	if err := db.blobs.Walk(func(info blobs.Info) error {
		files = append(files, info.Digest)
		return nil
	}); err != nil {
		return stats, errors.Wrap(err, "garbage collection: walk blobs")
	}
	var orphans []digest.Digest
	if err := db.bolt.View(func(tx *bolt.Tx) error {
		content := contentBucket(tx)
		for _, d := range files {
			if content.Bucket([]byte(d)) == nil {
				orphans = append(orphans, d)
			}
		}
		return nil
	}); err != nil {
		return stats, err
	}
	for _, d := range orphans {
		if err := db.blobs.Delete(d); err != nil {
			return stats, errors.Wrapf(err, "garbage collection: delete blob %s", d)
		}
		stats.Blobs++
	}

	cutoff := time.Now().Add(-ingestGrace)
	var stale []string
	if err := db.blobs.WalkIngests(func(info blobs.IngestInfo) error {
		if info.ModTime.Before(cutoff) {
			stale = append(stale, info.Name)
		}
		return nil
	}); err != nil {
		return stats, errors.Wrap(err, "garbage collection: walk ingests")
	}
	for _, name := range stale {
		if err := db.blobs.RemoveIngest(name); err != nil {
			return stats, errors.Wrapf(err, "garbage collection: remove ingest %s", name)
		}
		stats.Ingests++
	}
	return stats, nil
}
