package metadata

import (
	"os"
	"path/filepath"
	"syscall"

	"github.com/pkg/errors"
	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"
)

// A full disk must not lock the user out of freeing space. Every bbolt
// commit writes pages, even one that only deletes: copy-on-write copies of
// the branch and leaf pages it changed and a fresh freelist, into pages
// the freelist has or, when it has none to spare, past the end of the
// data, where bbolt grows meta.db with ftruncate — a hole, whose first
// write needs new blocks. So on a full filesystem the commit of `rm` fails
// with ENOSPC, and no space could ever be freed through the mount.
//
// The store therefore keeps <root>/reserve, a file of real (fallocated,
// never sparse) blocks, as ext4 keeps blocks for root. A commit that only
// frees space (an image, a blob or a namespace deleted, records dropped by
// garbage collection: updateFreeing) that fails with ENOSPC or EDQUOT
// deletes the reserve while it holds bbolt's write lock, so that no other
// commit can take the blocks, and commits again. Writes never use it: they
// fail with ENOSPC, and a failed commit changes nothing (bbolt rolls the
// transaction back; its meta page was not written, and the pages it wrote
// were free). Once enough is free again, the reserve comes back
// (restoreReserve).
//
// One freeing commit needs the pages it changes (a few per level of each
// bucket it touches: measured, a delete of one image with a handful of
// blobs allocates about 10 pages, 40 KiB) plus the freelist, 8 bytes per
// free page of meta.db; reserveSize covers both with a wide margin. After
// the first freeing commit the next ones mostly reuse the pages the one
// before freed, so a sequence of deletes (rm -rf) needs the reserve about
// once. bbolt never gives pages back to the filesystem, so deletes whose
// blobs other namespaces still hold free no disk space: they can use up
// the reserve without replacing it.
const reserveName = "reserve"

// reservePath is where the store keeps its reserve.
func (db *DB) reservePath() string { return filepath.Join(db.root, reserveName) }

// minReserve is the reserve of a small store.
const minReserve = 8 << 20

// reserveSize is how much a store whose meta.db holds metaSize bytes of
// pages keeps in reserve: 8 MiB, or an eighth of meta.db when that is
// more (its freelist alone can be metaSize/512).
func reserveSize(metaSize int64) int64 {
	return max(minReserve, metaSize/8)
}

// isNoSpace reports a full filesystem or an exceeded quota.
func isNoSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

// updateFreeing commits fn, which must only free space (delete records),
// as batch does; if the commit fails for want of space it releases the
// reserve and commits fn again, alone. Garbage collection that drops
// records commits through it too, and calls restoreReserve once it has
// deleted the files.
func (db *DB) updateFreeing(fn func(*bolt.Tx) error) error {
	err := db.batch(fn) // a failed group commit gives every call its error
	if !isNoSpace(err) {
		return err
	}
	return db.commitWithReserve(fn)
}

// commitWithReserve runs fn in a transaction of its own and deletes the
// reserve just before the commit, under bbolt's write lock: no other
// commit can take the freed blocks first (an ingest writing a blob file
// still can).
func (db *DB) commitWithReserve(fn func(*bolt.Tx) error) error {
	db.reserveMu.Lock()
	defer db.reserveMu.Unlock()
	tx, err := db.bolt.Begin(true)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }() // after Commit: ErrTxClosed, nothing done
	if err := fn(tx); err != nil {
		return err
	}
	released := db.releaseReserveLocked()
	if err := tx.Commit(); err != nil {
		switch {
		case isNoSpace(err) && released > 0:
			return errors.WithMessagef(err, "store %s is full, even with its reserve of %d bytes released", db.root, released)
		case isNoSpace(err):
			return errors.WithMessagef(err, "store %s is full, and its reserve is used up", db.root)
		}
		return err
	}
	return nil
}

// releaseReserveLocked deletes the reserve and says how many bytes it had.
func (db *DB) releaseReserveLocked() int64 {
	path := db.reservePath()
	db.reserveHave = 0
	db.reserveShort.Store(true)
	fi, err := os.Lstat(path)
	if err != nil || !fi.Mode().IsRegular() {
		return 0 // a planted link or the like: never ours to remove
	}
	if err := os.Remove(path); err != nil {
		return 0
	}
	return fi.Size()
}

// restoreReserve (re)creates the reserve at reserveSize when the
// filesystem has room for it and as much again besides, so that restoring
// it never takes the last free space from writes. Best effort: a failure
// leaves the reserve as it was and fails nothing. Open calls it, and so
// do deletes once their files are gone; while the reserve is short, every
// write calls it too (batch), in case space was freed outside the store.
func (db *DB) restoreReserve() {
	if db.opts.ReadOnly {
		return
	}
	var metaSize int64
	if err := db.bolt.View(func(tx *bolt.Tx) error {
		metaSize = tx.Size()
		return nil
	}); err != nil {
		return
	}
	want := reserveSize(metaSize)

	db.reserveMu.Lock()
	defer db.reserveMu.Unlock()
	defer func() { db.reserveShort.Store(db.reserveHave < want) }()
	if db.reserveHave >= want {
		return
	}
	path := db.reservePath()
	have := int64(0)
	if fi, err := os.Lstat(path); err == nil {
		if !fi.Mode().IsRegular() {
			// Planted (a link would be written through): left alone,
			// and no reserve is kept. The mount's check refuses it.
			return
		}
		have = fi.Size()
	}
	if have >= want {
		db.reserveHave = have
		return
	}
	var st unix.Statfs_t
	if err := unix.Statfs(db.root, &st); err != nil {
		return
	}
	if free := int64(st.Bavail) * st.Bsize; free < want-have+want {
		db.reserveHave = have
		return
	}
	if err := allocateFile(path, have, want); err != nil {
		db.reserveHave = have
		return
	}
	db.reserveHave = want
}

// allocateFile gives the file at path (have bytes, or missing) real
// blocks up to size, and fsyncs it; on failure it is cut back to have
// bytes (removed if it had none).
func allocateFile(path string, have, size int64) (err error) {
	// O_NOFOLLOW: a link planted since the Lstat is refused, not
	// written through.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			if have == 0 {
				_ = os.Remove(path)
			} else {
				_ = f.Truncate(have)
			}
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}()
	err = unix.Fallocate(int(f.Fd()), 0, 0, size)
	if errors.Is(err, unix.EOPNOTSUPP) {
		err = writeZeros(f, have, size) // a filesystem without fallocate
	}
	if err != nil {
		return err
	}
	return f.Sync()
}

// writeZeros writes zeros into f from off to size.
func writeZeros(f *os.File, off, size int64) error {
	zeros := make([]byte, 1<<20)
	for off < size {
		n := min(int64(len(zeros)), size-off)
		if _, err := f.WriteAt(zeros[:n], off); err != nil {
			return err
		}
		off += n
	}
	return nil
}
