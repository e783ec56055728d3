package metadata

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/pkg/errors"
	bolt "go.etcd.io/bbolt"
)

// Salvage replaces a damaged meta.db with a new one that holds every record
// that can still be read: it copies the old file bucket by bucket, and a
// bucket whose pages cannot be read loses what was past the damage (each
// loss is one line of the result). The old file is kept beside it as
// meta.db.damaged-<time>. A missing, empty or unopenable meta.db gives an
// empty store. Blob files are not touched: Check with Repair, run next,
// rebuilds what records can be derived and adopts the files no record
// names. The store must not be mounted.
//
// It is safe against a crash at any point: the new file is written beside
// the old one, fsynced, and renamed over it; the old one is hard-linked
// to its new name first, so meta.db is never missing.
func Salvage(root string, lockTimeout time.Duration) ([]string, error) {
	if lockTimeout <= 0 {
		lockTimeout = defaultLockTimeout
	}
	var actions []string
	did := func(format string, args ...any) { actions = append(actions, fmt.Sprintf(format, args...)) }
	dbpath := filepath.Join(root, "meta.db")
	tmp := dbpath + ".salvage"
	if err := os.Remove(tmp); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, errors.WithMessagef(err, "salvage store %s", root)
	}
	fresh, err := bolt.Open(tmp, 0o600, &bolt.Options{Timeout: lockTimeout})
	if err != nil {
		return nil, errors.WithMessagef(err, "salvage store %s", root)
	}
	defer os.Remove(tmp) // gone by then when all went well
	old, exists, err := openDamaged(root, dbpath, lockTimeout)
	if err != nil {
		fresh.Close()
		return nil, err
	}
	if old == nil {
		if exists {
			did("meta.db could not be opened: no record could be read")
		} else {
			did("meta.db is missing: no record could be read")
		}
	}
	err = fresh.Update(func(tx *bolt.Tx) error {
		if old != nil {
			if err := guarded(func() error {
				return old.View(func(otx *bolt.Tx) error {
					v1 := otx.Bucket(bucketV1)
					if v1 == nil {
						// v1/ may have lost its name: one other
						// top bucket is taken for it.
						var others [][]byte
						_ = otx.ForEach(func(name []byte, _ *bolt.Bucket) error {
							others = append(others, append([]byte(nil), name...))
							return nil
						})
						if len(others) == 1 {
							v1 = otx.Bucket(others[0])
							did("meta.db has no v1/ bucket: its one other top bucket %q is taken for it", others[0])
						}
					}
					if v1 != nil {
						dst, err := tx.CreateBucket(bucketV1)
						if err != nil {
							return err
						}
						salvageBucket(v1, dst, "v1", did)
					} else {
						did("meta.db has no v1/ bucket: no record could be read")
					}
					return nil
				})
			}); err != nil {
				did("reading meta.db stopped: %v", err)
			}
		}
		// What Open needs to open it; the rest of the shape is the
		// repair's (repairShape), which runs next on the new file.
		v1 := tx.Bucket(bucketV1)
		if v1 == nil {
			return nil // Open makes a new store's schema
		}
		if getUint64(v1, keyVersion) == 0 {
			if err := putUint64(v1, keyVersion, schemaVersion); err != nil {
				return err
			}
		}
		for _, b := range [][]byte{bucketNamespaces, bucketContent, bucketUnheld} {
			if made, err := remakeBucket(v1, b); err != nil {
				return err
			} else if made {
				did("v1/%s/ was lost: made anew, empty", b)
			}
		}
		return nil
	})
	if old != nil {
		old.Close()
	}
	if err != nil {
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
	if exists {
		kept := fmt.Sprintf("%s.damaged-%s", dbpath, time.Now().UTC().Format("20060102T150405.000000000Z"))
		if err := os.Link(dbpath, kept); err != nil {
			return actions, errors.WithMessagef(err, "salvage store %s: keep the damaged meta.db", root)
		}
		did("kept the damaged meta.db as %s", filepath.Base(kept))
	}
	if err := os.Rename(tmp, dbpath); err != nil {
		return actions, errors.WithMessagef(err, "salvage store %s", root)
	}
	if err := syncDir(root); err != nil {
		return actions, errors.WithMessagef(err, "salvage store %s", root)
	}
	did("wrote a new meta.db with the records that could be read")
	return actions, nil
}

// openDamaged opens meta.db read-only for Salvage: nil (and whether the
// file exists) when there is nothing bbolt can open; ErrLocked when a
// daemon serves the store.
func openDamaged(root, dbpath string, lockTimeout time.Duration) (db *bolt.DB, exists bool, err error) {
	fi, err := os.Lstat(dbpath)
	if errors.Is(err, os.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, errors.WithMessagef(err, "salvage store %s", root)
	}
	if !fi.Mode().IsRegular() || fi.Size() == 0 {
		return nil, true, nil
	}
	// Not openBolt, which refuses any damage: here a damaged file is the
	// point, and every page is read under a guard (salvageBucket). A
	// read-only open reads only the meta pages.
	err = guarded(func() error {
		var oerr error
		db, oerr = bolt.Open(dbpath, 0o600, &bolt.Options{Timeout: lockTimeout, ReadOnly: true})
		return oerr
	})
	if errors.Is(err, bolt.ErrTimeout) {
		return nil, true, errors.WithMessagef(ErrLocked, "store %s is already in use by another nsfs (%s is locked)", root, dbpath)
	}
	if err != nil {
		return nil, true, nil
	}
	return db, true, nil
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
				dsub, err := dst.CreateBucketIfNotExists(k)
				if err != nil {
					did("%s/%q: not copied (%v)", path, k, err)
					continue
				}
				salvageBucket(sub, dsub, fmt.Sprintf("%s/%s", path, k), did)
			} else if err := dst.Put(k, v); err != nil {
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
