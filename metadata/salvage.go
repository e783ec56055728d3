package metadata

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/pkg/errors"
	bolt "go.etcd.io/bbolt"
)

// salvageStore replaces a damaged meta.db with a new one that holds every
// record that can still be read: it walks the old file's pages itself
// (rawFile, each page once, so that a page naming its ancestor cannot
// loop it) and copies every key it reaches; what sat on a damaged page,
// or below one, is lost (each loss is one line of the result). The old
// file is kept beside it as meta.db.before-repair-<time>. A missing,
// empty or unreadable meta.db gives an empty store. Blob files are not
// touched: Check with Repair, run next, rebuilds what records can be
// derived and adopts the files no record names. The store must not be
// mounted.
//
// It is safe against a crash at any point: the new file is written beside
// the old one, fsynced, and renamed over it; the old one is hard-linked
// to its new name first, so meta.db is never missing.
func salvageStore(root string) ([]string, error) {
	var actions []string
	did := func(format string, args ...any) { actions = append(actions, fmt.Sprintf(format, args...)) }
	dbpath := metaPath(root)
	tmp := dbpath + ".salvage"
	exists, unlock, err := lockOldMeta(root, dbpath)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if err := os.Remove(tmp); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, errors.WithMessagef(err, "salvage store %s", root)
	}
	// NoSync: one fsync at the end (fresh.Sync) makes the whole copy
	// durable before it is renamed into place; a crash before leaves only
	// the temporary file, removed by the next salvage.
	fresh, err := bolt.Open(tmp, 0o600, &bolt.Options{Timeout: lockTimeout, NoSync: true})
	if err != nil {
		return nil, errors.WithMessagef(err, "salvage store %s", root)
	}
	defer os.Remove(tmp) // gone by then when all went well
	if err := copyReadable(dbpath, exists, fresh, did); err != nil {
		fresh.Close()
		return actions, errors.WithMessagef(err, "salvage store %s", root)
	}
	if err := fresh.Sync(); err != nil {
		fresh.Close()
		return actions, errors.WithMessagef(err, "salvage store %s", root)
	}
	if err := fresh.Close(); err != nil {
		return actions, errors.WithMessagef(err, "salvage store %s", root)
	}
	if err := replaceMeta(root, dbpath, tmp, exists, did); err != nil {
		return actions, err
	}
	did("wrote a new meta.db with the records that could be read")
	return actions, nil
}

// lockOldMeta takes the old meta.db's lock, shared (a daemon serving the
// store has it: ErrLocked), until unlock is called. exists says whether
// there is a meta.db at all.
func lockOldMeta(root, dbpath string) (exists bool, unlock func(), err error) {
	unlock = func() {}
	fi, err := os.Lstat(dbpath)
	if err != nil {
		return false, unlock, nil
	}
	if fi.Mode().IsRegular() && fi.Size() > 0 {
		var held *bolt.DB
		err := guarded(func() error {
			var err error
			held, err = bolt.Open(dbpath, 0o600, &bolt.Options{Timeout: lockTimeout, ReadOnly: true})
			return err
		})
		if errors.Is(err, bolt.ErrTimeout) {
			return true, unlock, errors.WithMessagef(ErrLocked, "store %s is already in use by another nsfs (%s is locked)", root, dbpath)
		}
		if err == nil && held != nil {
			unlock = func() { held.Close() }
		}
	}
	return true, unlock, nil
}

// copyReadable copies every record of the old meta.db (at dbpath, if it
// exists) that can be read into fresh, then gives fresh what Open needs
// to open it; the rest of the shape is the repair's (repairShape), which
// runs next on the new file.
func copyReadable(dbpath string, exists bool, fresh *bolt.DB, did func(string, ...any)) error {
	var old *rawFile
	switch {
	case !exists:
		did("meta.db is missing: no record could be read")
	default:
		var err error
		if old, err = openRawFile(dbpath); err != nil {
			did("meta.db %v: no record could be read", err)
			old = nil
		}
	}
	if old != nil {
		defer old.Close()
		copied, err := copyRaw(old, fresh, did)
		if err != nil {
			return err
		}
		did("copied %d records that could be read", copied)
	}
	return fresh.Update(func(tx *bolt.Tx) error {
		if old != nil && tx.Bucket(bucketV1) == nil {
			if err := renameToV1(tx, did); err != nil {
				return err
			}
		}
		v1 := tx.Bucket(bucketV1)
		if v1 == nil {
			return nil // Open makes a new store's schema
		}
		return repairTop(v1, did)
	})
}

// renameToV1 gives a copy without v1/ its one other top bucket (not
// nsdir/, nor a namespace's ns/<name>/ or nsdata/<id>/) as v1/: v1/ may
// have lost its name.
func renameToV1(tx *bolt.Tx, did func(string, ...any)) error {
	var others [][]byte
	_ = tx.ForEach(func(name []byte, _ *bolt.Bucket) error {
		if !bytes.Equal(name, bucketNSDir) && !bytes.HasPrefix(name, prefixNamespace) && !bytes.HasPrefix(name, prefixData) {
			others = append(others, append([]byte(nil), name...))
		}
		return nil
	})
	if len(others) != 1 {
		did("meta.db has no v1/ bucket: no record could be read")
		return nil
	}
	dst, err := tx.CreateBucket(bucketV1)
	if err != nil {
		return err
	}
	salvageBucket(tx.Bucket(others[0]), dst, "v1", did)
	if err := tx.DeleteBucket(others[0]); err != nil {
		return err
	}
	did("meta.db has no v1/ bucket: its one other top bucket %q is taken for it", others[0])
	return nil
}

// replaceMeta keeps the old meta.db (if any) under a name of its own,
// then renames the new one (tmp) over it, durably.
func replaceMeta(root, dbpath, tmp string, exists bool, did func(string, ...any)) error {
	if exists {
		kept := fmt.Sprintf("%s.before-repair-%s", dbpath, time.Now().UTC().Format("20060102T150405.000000000Z"))
		if err := os.Link(dbpath, kept); err != nil {
			return errors.WithMessagef(err, "salvage store %s: keep the damaged meta.db", root)
		}
		did("kept the meta.db the repair started from as %s", filepath.Base(kept))
	}
	if err := os.Rename(tmp, dbpath); err != nil {
		return errors.WithMessagef(err, "salvage store %s", root)
	}
	if err := syncDir(root); err != nil {
		return errors.WithMessagef(err, "salvage store %s", root)
	}
	return nil
}

// salvageBatch is how many keys salvageStore copies per transaction: a
// bbolt write transaction keeps every page it dirties in memory until it
// commits, so one transaction for a large store would hold all of it.
const salvageBatch = 20000

// copyRaw copies every key old's pages reach into fresh, buckets made as
// their paths say, in transactions of salvageBatch keys, and reports each
// damaged page through did. It returns how many keys it copied.
func copyRaw(old *rawFile, fresh *bolt.DB, did func(string, ...any)) (int, error) {
	tx, err := fresh.Begin(true)
	if err != nil {
		return 0, err
	}
	defer func() { _ = tx.Rollback() }()
	copied, pending := 0, 0
	var failed error
	// The bucket of a path, made on the way (nil where that failed).
	bucketOf := func(path [][]byte) *bolt.Bucket {
		if len(path) == 0 {
			return nil
		}
		b := tx.Bucket(path[0])
		for _, name := range path[1:] {
			if b == nil {
				return nil
			}
			b = b.Bucket(name)
		}
		return b
	}
	old.walk(func(path [][]byte, key, value []byte, bucket bool, seq uint64) {
		if failed != nil {
			return
		}
		if pending >= salvageBatch {
			if failed = tx.Commit(); failed != nil {
				return
			}
			if tx, failed = fresh.Begin(true); failed != nil {
				return
			}
			pending = 0
		}
		k := append([]byte(nil), key...)
		if bucket {
			var b *bolt.Bucket
			var err error
			if parent := bucketOf(path); len(path) == 0 {
				b, err = tx.CreateBucketIfNotExists(k)
			} else if parent != nil {
				b, err = parent.CreateBucketIfNotExists(k)
			}
			if err != nil {
				did("bucket %q: not copied (%v)", key, err)
			}
			if b != nil {
				_ = b.SetSequence(seq)
				copied++
				pending++
			}
			return
		}
		if parent := bucketOf(path); parent != nil {
			if err := parent.Put(k, append([]byte(nil), value...)); err == nil {
				copied++
				pending++
			}
		}
	}, func(problem string) {
		did("lost what meta.db's %s held", problem)
	})
	if failed != nil {
		return copied, failed
	}
	return copied, tx.Commit()
}

// salvageBucket copies src into dst, nested buckets and sequences included;
// what cannot be read (a panic of bbolt's on a damaged page) ends the copy
// of that bucket, and the loss is reported through did.
func salvageBucket(src, dst *bolt.Bucket, path string, did func(string, ...any)) {
	copied := 0
	err := guarded(func() error {
		if err := dst.SetSequence(src.Sequence()); err != nil {
			return err
		}
		c := src.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if v == nil {
				sub := src.Bucket(k)
				if sub == nil {
					continue
				}
				// Copies: src's bytes live in the memory map, which a
				// write transaction may remap (bbolt wants a key and a
				// value valid for the whole transaction).
				dsub, err := dst.CreateBucketIfNotExists(append([]byte(nil), k...))
				if err != nil {
					did("%s/%q: not copied (%v)", path, k, err)
					continue
				}
				salvageBucket(sub, dsub, fmt.Sprintf("%s/%s", path, k), did)
			} else if err := dst.Put(append([]byte(nil), k...), append([]byte(nil), v...)); err != nil {
				did("%s/%q: not copied (%v)", path, k, err)
			}
			copied++
		}
		return nil
	})
	if err != nil {
		did("%s: unreadable after %d entries, the rest is lost (%v)", path, copied, err)
	}
}

// syncDir fsyncs a directory, making the renames in it durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Repair is nsfs fsck --repair of the unmounted store at root: a check,
// then, if it found anything, the repair, always on a copy. bbolt trusts
// its file, and a write into one with damage its checks cannot see (a bit
// flipped in a page's bookkeeping) can corrupt what was sound, so every
// record that can be read is first copied into a new meta.db (salvageStore;
// the file it started from is kept beside it), and Check repairs that.
// The report's Problems are the first check's; Repairs begin with the
// salvage's lines.
func Repair(root string, opts CheckOptions) (Report, error) {
	opts.Repair = false
	var first Report
	db, err := Open(root, Options{})
	if err == nil {
		first, err = db.Check(opts)
		if err == nil && len(first.Problems) > 0 {
			// Where the repair moves what it never deletes must be
			// sound before anything changes, the copy included.
			if qerr := db.blobs.CheckQuarantine(); qerr != nil {
				db.Close()
				return first, errors.WithMessagef(qerr, "repair store %s", root)
			}
		}
		if err == nil && len(first.Problems) == 0 && len(first.Notes) > 0 {
			// Nothing to salvage: the ingests a kill left go, as a
			// repair of a damaged store removes them.
			first.Repairs, err = db.removeIngestsReported()
			first.Remaining = []Problem{}
		}
		db.Close()
		if err == nil && len(first.Problems) == 0 {
			return first, nil
		}
	}
	if err != nil && !IsDamaged(err) {
		return first, err
	}
	if err != nil {
		// Unreadable as it is: the reason is the first problem.
		reason, _, _ := strings.Cut(strings.TrimPrefix(err.Error(), "store "+root+": "), "; nothing was changed")
		first.Problems = append(first.Problems, Problem{Object: "store", What: reason})
	}
	salvaged, err := salvageStore(root)
	if err != nil {
		first.Repairs = salvaged
		return first, err
	}
	if db, err = Open(root, Options{}); err != nil {
		first.Repairs = salvaged
		return first, err
	}
	defer db.Close()
	opts.Repair = true
	rep, err := db.Check(opts)
	rep.Problems = first.Problems
	rep.Repairs = append(salvaged, rep.Repairs...)
	if err == nil && len(rep.Remaining) == 0 && len(rep.Repairs) > 0 {
		rep.Remaining = []Problem{}
	}
	return rep, err
}
