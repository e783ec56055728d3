package metadata

import (
	"os"
	"path/filepath"

	"github.com/pkg/errors"
	bolt "go.etcd.io/bbolt"
)

// CompactStats says what Compact did to meta.db.
type CompactStats struct {
	Before, After int64 // file sizes in bytes
}

// compactTxSize is how many bytes Compact copies per transaction of the
// new file, so that copying a large store does not hold it all in memory.
const compactTxSize = 64 << 20

// Compact rewrites the meta.db of the closed store at root without its
// free pages (nsfs gc --compact). bbolt reuses the pages deleted records
// free, but never gives them back to the filesystem: a store that once
// held many more images keeps its size until compacted.
//
// The store is opened (ErrLocked while a daemon has it; an older schema
// is migrated first), its records copied by bbolt's Compact into
// meta.db.compact in the same directory, which is fsynced, then renamed
// over meta.db, and the directory fsynced: a crash leaves the old file or
// the new one, both whole. The new file is locked from its creation until
// it is complete and in place, so a daemon that starts meanwhile gets
// ErrLocked, never a half-copied store. A meta.db.compact left by a crash
// is overwritten.
func Compact(root string) (CompactStats, error) {
	var stats CompactStats
	db, err := Open(root, Options{})
	if err != nil {
		return stats, err
	}
	defer db.Close()
	dbpath := metaPath(root)
	fi, err := os.Stat(dbpath)
	if err != nil {
		return stats, errors.WithMessagef(err, "compact store %s", root)
	}
	stats.Before = fi.Size()
	tmp := filepath.Join(root, CompactLeftover)
	if err := os.Remove(tmp); err != nil && !errors.Is(err, os.ErrNotExist) {
		return stats, errors.WithMessagef(err, "compact store %s: remove a leftover %s", root, filepath.Base(tmp))
	}
	dst, err := bolt.Open(tmp, 0o600, &bolt.Options{Timeout: lockTimeout})
	if err != nil {
		return stats, errors.WithMessagef(err, "compact store %s: create %s", root, filepath.Base(tmp))
	}
	renamed := false
	defer func() {
		dst.Close()
		if !renamed {
			os.Remove(tmp)
		}
	}()
	if err := bolt.Compact(dst, db.bolt, compactTxSize); err != nil {
		return stats, errors.WithMessagef(err, "compact store %s", root)
	}
	// Every commit of the copy was synced; the file itself once more, for
	// its size.
	if err := dst.Sync(); err != nil {
		return stats, errors.WithMessagef(err, "compact store %s: sync %s", root, filepath.Base(tmp))
	}
	if err := os.Rename(tmp, dbpath); err != nil {
		return stats, errors.WithMessagef(err, "compact store %s", root)
	}
	renamed = true
	if err := syncDir(root); err != nil {
		return stats, errors.WithMessagef(err, "compact store %s: sync the directory", root)
	}
	if fi, err := os.Stat(dbpath); err == nil {
		stats.After = fi.Size()
	}
	return stats, nil
}

// openCurrentBolt is openBolt of the file that is meta.db once its lock is
// held, so that no daemon serves an unlinked file Compact replaced.
// openBolt waits for the lock read-only, then opens meta.db again by name
// to write: a Compact that took the lock between the two would leave the
// second open waiting on the old file, and then holding it.
func openCurrentBolt(root, dbpath string, opts *bolt.Options) (*bolt.DB, error) {
	for try := 0; ; try++ {
		before, statErr := os.Stat(dbpath)
		bdb, err := openBolt(root, dbpath, opts)
		if err != nil || statErr != nil {
			return bdb, err
		}
		after, err := os.Stat(dbpath)
		if err == nil && os.SameFile(before, after) {
			return bdb, nil
		}
		bdb.Close()
		if try == 2 {
			return nil, errors.WithMessagef(ErrLocked, "store %s: its meta.db was replaced while it was being opened (nsfs gc --compact?)", root)
		}
	}
}
