package metadata

import (
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nsfs/nsfs/blobs"
	"github.com/pkg/errors"
	bolt "go.etcd.io/bbolt"
)

// Sharing is the content-sharing policy chosen at mount (README,
// "Choices": which blobs a namespace can see).
type Sharing string

const (
	// SharingShared: a namespace can see every blob the store holds.
	SharingShared Sharing = "shared"
	// SharingIsolated: a namespace sees what it holds and what namespaces
	// labelled containerd.io/namespace.shareable=true hold.
	SharingIsolated Sharing = "isolated"
)

// ShareableLabel marks a namespace whose blobs every namespace can see
// under SharingIsolated (containerd's label).
const ShareableLabel = "containerd.io/namespace.shareable"

// Options configure a DB.
type Options struct {
	Sharing Sharing // default SharingShared
	// ReadOnly opens an existing store without writing to it (nsfs fsck
	// without --repair): a missing meta.db is an error, and every
	// mutation fails. It takes the lock shared, so it still waits for a
	// daemon that has the store open (ErrLocked).
	ReadOnly bool
}

// DB is an nsfs store: the bbolt metadata file <root>/meta.db plus the
// shared blob directory. All mutations are single bbolt transactions; every
// rule (emptiness, visibility, references) is checked inside the
// transaction that mutates.
type DB struct {
	root  string
	opts  Options
	bolt  *bolt.DB
	blobs *blobs.Store

	// contentLocks are held, per digest, across [publish a blob file +
	// commit the record that holds it] and across [see that no record
	// names a file + delete it], so neither pair interleaves with the
	// other for the same digest (doc.go, "Files and records"; lockContent).
	contentLocks [contentLockStripes]sync.Mutex

	// batcher groups concurrent writes into shared commits (batch.go).
	batcher batcher
	// commitForTests, nil in production, replaces the group commit for
	// tests and benchmarks that compare other ways to commit
	// (setCommitMode, export_test.go).
	commitForTests func(func(*bolt.Tx) error) error

	// ids is the block of IDs ImageStore.ReserveID hands out, taken from
	// the sequence in one transaction per idBlock IDs.
	idMu   sync.Mutex
	idNext uint64 // next ID of the block; the block is empty when idNext == idEnd
	idEnd  uint64

	// reserveMu guards the reserve file and reserveHave, its size as last
	// seen (reserve.go).
	reserveMu   sync.Mutex
	reserveHave int64
	// reserveShort: the reserve is smaller than it should be, and every
	// write looks for the room to restore it.
	reserveShort atomic.Bool
}

// idBlock is how many IDs ImageStore.ReserveID takes from the sequence at
// once. The unused rest of a block is lost when the store closes, which
// costs nothing: IDs are never reused anyway, and 2^64 is far.
const idBlock = 1024

// ReserveID takes IDs from an in-memory block, so a reservation costs a
// write transaction only once per idBlock IDs.
func (db imageStore) ReserveID() (uint64, error) {
	db.idMu.Lock()
	defer db.idMu.Unlock()
	if db.idNext == db.idEnd {
		err := db.bolt.Update(func(tx *bolt.Tx) error {
			ids := idsBucket(tx)
			if ids == nil {
				return errors.WithMessagef(errCorrupt, "bucket %q is missing", bucketNSDir)
			}
			seq := ids.Sequence()
			if err := ids.SetSequence(seq + idBlock); err != nil {
				return err
			}
			db.idNext, db.idEnd = seq+1, seq+idBlock+1
			return nil
		})
		if err != nil {
			db.idNext, db.idEnd = 0, 0
			return 0, errors.WithMessage(err, "reserve image IDs")
		}
	}
	id := db.idNext
	db.idNext++
	return id, nil
}

// defaultNamespace is created with a new store, so a fresh mount shows
// ns/default as containerd and ctr users expect.
const defaultNamespace = "default"

// lockTimeout bounds the wait for another process's lock on meta.db; a
// store already open elsewhere gives ErrLocked naming the root.
const lockTimeout = 500 * time.Millisecond

// metaPath is where the store at root keeps its records; the blob files
// below root are package blobs' layout.
func metaPath(root string) string { return filepath.Join(root, "meta.db") }

// Open opens (creating if needed) the store at root: <root>/meta.db and the
// blob directory. A new store gets the namespace "default". A store open in
// another process (or another DB of this one) gives ErrLocked after
// lockTimeout.
func Open(root string, opts Options) (*DB, error) {
	switch opts.Sharing {
	case "":
		opts.Sharing = SharingShared
	case SharingShared, SharingIsolated:
	default:
		return nil, errors.WithMessagef(ErrInvalidArgument, "content sharing %q: must be %q or %q", opts.Sharing, SharingShared, SharingIsolated)
	}
	dbpath := metaPath(root)
	if err := checkMetaFile(root, dbpath, opts.ReadOnly); err != nil {
		return nil, err
	}
	if !opts.ReadOnly {
		if err := os.MkdirAll(root, 0o700); err != nil {
			return nil, errors.WithMessagef(err, "create store %s", root)
		}
	}
	// The blob directories first: one that is a planted link is refused
	// before a new meta.db could be written beside it.
	bs, err := blobs.Open(root)
	if err != nil {
		return nil, errors.WithMessagef(err, "open blob directory of store %s", root)
	}
	bdb, err := openCurrentBolt(root, dbpath, boltOptions(opts.ReadOnly))
	if err != nil {
		bs.Close()
		return nil, err
	}
	db := &DB{root: root, opts: opts, bolt: bdb, blobs: bs}
	initSchema := func() error {
		// Only a new store is written to: an existing one opens on a full disk.
		current := false
		_ = bdb.View(func(tx *bolt.Tx) error {
			current = db.checkSchema(tx) == nil && unheldBucket(tx) != nil && shareableBucket(tx) != nil && usageCurrent(tx)
			return nil
		})
		if current {
			return nil
		}
		return bdb.Update(db.initSchema)
	}
	if opts.ReadOnly {
		initSchema = func() error { return bdb.View(db.checkSchema) }
	}
	if err := guarded(initSchema); err != nil {
		bs.Close()
		bdb.Close()
		if errors.Is(err, errCorrupt) {
			return nil, damaged(root, "%v", err)
		}
		return nil, errors.WithMessagef(err, "store %s", root)
	}
	db.restoreReserve()
	return db, nil
}

// initSchema creates the schema of a new store, with the default namespace,
// and checks the version of an existing one.
func (db *DB) initSchema(tx *bolt.Tx) error {
	if v1 := tx.Bucket(bucketV1); v1 != nil {
		if err := migrate(tx, v1); err != nil {
			return err
		}
		if err := checkVersion(v1, false); err != nil {
			return err
		}
		// Stores written before unheld/ existed get it empty. A crash
		// of the nsfs that wrote them may have left a blob file no
		// record names: Recover then refuses the store once, and
		// fsck --repair adopts the file.
		if _, err := v1.CreateBucketIfNotExists(bucketUnheld); err != nil {
			return err
		}
		if err := ensureShareableIndex(tx); err != nil {
			return err
		}
		return ensureUsage(tx)
	}
	// A file with other buckets but no v1/ is a store whose v1/ lost its
	// name: making a new, empty schema beside it would serve an empty
	// store and bury the records (salvageStore finds them).
	if err := tx.ForEach(func(name []byte, _ *bolt.Bucket) error {
		return errors.WithMessagef(errCorrupt, "meta.db has no v1/ bucket, but has %q", shorten(string(name)))
	}); err != nil {
		return err
	}
	v1, err := tx.CreateBucket(bucketV1)
	if err != nil {
		return err
	}
	if err := putUint64(v1, keyVersion, schemaVersion); err != nil {
		return err
	}
	if _, err := tx.CreateBucket(bucketNSDir); err != nil {
		return err
	}
	if _, err := createData(tx, noDataID); err != nil {
		return err
	}
	if _, err := v1.CreateBucket(bucketContent); err != nil {
		return err
	}
	if _, err := v1.CreateBucket(bucketUnheld); err != nil {
		return err
	}
	if err := ensureShareableIndex(tx); err != nil {
		return err
	}
	_, err = createNamespace(tx, defaultNamespace, nil)
	return err
}

// checkSchema is initSchema for a read-only store, which must exist.
func (db *DB) checkSchema(tx *bolt.Tx) error {
	v1 := tx.Bucket(bucketV1)
	if v1 == nil {
		return errors.WithMessage(errCorrupt, "meta.db has no v1/ bucket: not an nsfs store")
	}
	return checkVersion(v1, db.opts.ReadOnly)
}

// Close closes the bbolt file, releasing its lock, and the blob store's
// directories.
func (db *DB) Close() error {
	err := db.bolt.Close()
	if berr := db.blobs.Close(); err == nil {
		err = berr
	}
	return err
}

// Root is the store's directory.
func (db *DB) Root() string { return db.root }

// Sharing is the policy in force.
func (db *DB) Sharing() Sharing { return db.opts.Sharing }
