package metadata

import (
	"io"
	"os"
	"sync"
	"time"

	"github.com/nsfs/nsfs/blobs"
	"github.com/nsfs/nsfs/names"
	"github.com/opencontainers/go-digest"
	"github.com/pkg/errors"
	bolt "go.etcd.io/bbolt"
)

// Blob is a blob as one namespace sees it.
type Blob struct {
	Digest    digest.Digest
	Size      int64
	Held      bool // ns holds it (listed in blobs/sha256, counted by rmdir)
	InUse     bool // an image of ns references it
	Labels    map[string]string
	CreatedAt time.Time
	Times     Times // mtime and ctime (times.go)
}

// ContentStore keeps which blobs each namespace holds and serves their
// bytes from the shared blob directory: blobs/sha256/ of a namespace.
// `ls blobs/sha256` reaches List, a lookup or stat of blobs/sha256/<hex>
// Stat, `cat` Open, `rm` Delete, `cp layer.tar blobs/sha256/<hex>` Writer,
// the same copy over a damaged or missing file (an open with O_TRUNC)
// Rewriter, and `rmdir blobs blobs/sha256` RemoveDir. A blob's labels are
// the LabelStore's.
type ContentStore interface {
	// Stat returns a blob ns can see, without its labels (Labels is nil: a
	// lookup or a stat needs no map built on every one), or ErrNotFound.
	Stat(ns string, d digest.Digest) (Blob, error)
	// List returns the blobs ns holds, sorted by digest. Their Labels are
	// nil: a listing does not read them (LabelStore.All does).
	List(ns string) ([]Blob, error)
	// Open opens a blob ns can see for reading (ErrNotFound). A file in the
	// store that is not the blob's (a link, a fifo, a file of another size
	// than recorded) is never read: that error wraps blobs.ErrUnsafe or
	// blobs.ErrDamaged and is of no kind (an I/O error to a reader).
	Open(ns string, d digest.Digest) (*os.File, error)
	// Delete makes ns drop blob d: ErrInUse while an image of ns references
	// it, ErrNotFound unless ns holds it. The file leaves the disk when no
	// namespace holds it.
	Delete(ns string, d digest.Digest) error
	// Writer starts an ingest of d into ns: ErrExists when ns can already
	// see d (nothing to send), ErrInvalidArgument for a bad digest,
	// ErrNotFound for a missing namespace. The bytes go to a temporary
	// file. nsID, if not zero, must be the namespace's ID, here and again
	// in Commit's transaction: a namespace deleted and made again under the
	// same name is another one (ErrNotFound, "namespace %q was deleted").
	Writer(ns string, nsID uint64, d digest.Digest) (*BlobWriter, error)
	// Rewriter is Writer for a writer that replaces the blob's bytes (an
	// open with O_TRUNC, as cp, tar -x and rsync do over a file that is
	// there): also when ns can see d, the ingest goes ahead, and its Commit
	// verifies the bytes (ErrDigestMismatch, nothing changes). The same
	// bytes over a sound file change nothing on disk, and ns holds d
	// afterwards (it did already, or it has now written it); over a file
	// in the store that is missing or not the blob's (a link, a fifo, a
	// file of another size) they put the verified bytes in place.
	Rewriter(ns string, nsID uint64, d digest.Digest) (*BlobWriter, error)
	// RemoveDir answers rmdir of blobs/ and blobs/sha256 of ns, which stay
	// while the namespace does (as ImageStore.RemoveDir(ns, "") does for
	// images/): nil when ns holds no blob, ErrNotEmpty while it holds some,
	// ErrNotFound without the namespace. Nothing is deleted.
	RemoveDir(ns string) error
}

// Content is the store's ContentStore.
func (db *DB) Content() ContentStore { return contentStore{db} }

// contentStore is the DB seen as its ContentStore.
type contentStore struct{ *DB }

// visible reports whether ns can see blob d under the sharing policy, and
// its size. Shared: every blob some namespace holds. Isolated: what ns
// holds, and what a namespace labelled ShareableLabel=true holds — two
// keyed reads (ns's hold, the shareable index) whatever the number of
// holders, the same ones for a blob nobody holds and for one only other,
// private namespaces hold; the size is read only for a visible blob.
func (db *DB) visible(tx *bolt.Tx, ns string, d digest.Digest) (int64, bool) {
	nsb := namespacesBucket(tx).Bucket([]byte(ns))
	if db.sharingOf(nsb) == SharingShared {
		cb := contentBucket(tx).Bucket([]byte(d))
		if cb == nil {
			return 0, false
		}
		return getInt64(cb, keySize), true
	}
	if nsb != nil {
		if rec := heldBlob(nsb, d); rec != nil {
			return getInt64(rec, keySize), true
		}
	}
	if !heldByShareable(tx, d) {
		return 0, false
	}
	cb := contentBucket(tx).Bucket([]byte(d))
	if cb == nil {
		return 0, false
	}
	return getInt64(cb, keySize), true
}

// heldBlob returns blobs/<d>/ of the namespace's data, or nil.
func heldBlob(nsb *bolt.Bucket, d digest.Digest) *bolt.Bucket {
	bb := nsSub(nsb, bucketBlobs)
	if bb == nil {
		return nil
	}
	return bb.Bucket([]byte(d))
}

// releases collects, during one write transaction, the digests no
// namespace holds any more; their files are deleted after the commit.
type releases struct {
	ns       string          // the namespace that stopped holding blobs
	orphaned []digest.Digest // no holder left: the file goes
}

// hold makes ns hold d (size bytes), creating the namespace's record and
// adding ns to the global holders. It does not touch the images count.
func hold(tx *bolt.Tx, nsb *bolt.Bucket, ns string, d digest.Digest, size int64, t time.Time) (*bolt.Bucket, error) {
	bb, err := nsData(nsb).CreateBucketIfNotExists(bucketBlobs)
	if err != nil {
		return nil, err
	}
	if rec := bb.Bucket([]byte(d)); rec != nil {
		return rec, nil
	}
	if err := checkQuota(nsb, ns, d, size); err != nil {
		return nil, err
	}
	before := holdersOf(contentBucket(tx).Bucket([]byte(d))) // before ns
	if err := usageOnHold(tx, nsb, before, size); err != nil {
		return nil, err
	}
	rec, err := bb.CreateBucket([]byte(d))
	if err != nil {
		return nil, err
	}
	if err := putInt64(rec, keySize, size); err != nil {
		return nil, err
	}
	if err := putTime(rec, keyCreatedAt, t); err != nil {
		return nil, err
	}
	if err := putUint64(rec, keyImages, 0); err != nil {
		return nil, err
	}
	if isShareable(nsb) {
		if err := countShareable(tx, d, +1); err != nil {
			return nil, err
		}
	}

	cb := contentBucket(tx).Bucket([]byte(d))
	if cb == nil {
		if cb, err = contentBucket(tx).CreateBucket([]byte(d)); err != nil {
			return nil, err
		}
		if err := putInt64(cb, keySize, size); err != nil {
			return nil, err
		}
		if err := putTime(cb, keyCreatedAt, t); err != nil {
			return nil, err
		}
		// Held now: its file is no longer garbage.
		if err := unheldBucket(tx).Delete([]byte(d)); err != nil {
			return nil, err
		}
	}
	// Its bytes were made when the store first had them: every namespace
	// shows that mtime (and so before it holds the blob, as one it sees).
	if err := putTime(rec, keyMtime, getTime(cb, keyCreatedAt)); err != nil {
		return nil, err
	}
	return rec, holdersOf(cb).Put([]byte(ns), member)
}

// drop makes ns stop holding d; when ns was its last holder the global
// record goes too and d is recorded as orphaned.
func drop(tx *bolt.Tx, nsb *bolt.Bucket, d digest.Digest, rel *releases) error {
	rec := heldBlob(nsb, d)
	if rec == nil {
		return errors.WithMessagef(errCorrupt, "namespace %q drops blob %s, which it does not hold", rel.ns, d)
	}
	size := getInt64(rec, keySize)
	if err := nsSub(nsb, bucketBlobs).DeleteBucket([]byte(d)); err != nil {
		return err
	}
	if isShareable(nsb) {
		if err := countShareable(tx, d, -1); err != nil {
			return err
		}
	}
	content := contentBucket(tx)
	cb := content.Bucket([]byte(d))
	if cb == nil {
		return errors.WithMessagef(errCorrupt, "blob %s is held by namespace %q but has no content record", d, rel.ns)
	}
	holders := holdersOf(cb)
	if err := holders.Delete([]byte(rel.ns)); err != nil {
		return err
	}
	if err := usageOnDrop(tx, nsb, holders, size); err != nil {
		return err
	}
	if holders.empty() {
		if err := content.DeleteBucket([]byte(d)); err != nil {
			return err
		}
		// The tombstone that lets gc prove the file is garbage, should
		// the delete after this commit not happen.
		if err := markUnheld(tx, d); err != nil {
			return err
		}
		rel.orphaned = append(rel.orphaned, d)
	}
	return nil
}

// claim adds one image's reference to a blob ns holds (or now holds).
func claim(tx *bolt.Tx, nsb *bolt.Bucket, ns string, d digest.Digest, size int64, t time.Time) error {
	rec, err := hold(tx, nsb, ns, d, size, t)
	if err != nil {
		return err
	}
	return putUint64(rec, keyImages, getUint64(rec, keyImages)+1)
}

// unclaim removes one image's reference; the namespace drops the blob when
// no image of it references the blob any more, even if the namespace wrote
// it itself (docs/design.md: rm of an image drops the blobs only it held).
func unclaim(tx *bolt.Tx, nsb *bolt.Bucket, d digest.Digest, rel *releases) error {
	rec := heldBlob(nsb, d)
	if rec == nil {
		return errors.WithMessagef(errCorrupt, "an image of namespace %q claims blob %s, which it does not hold", rel.ns, d)
	}
	n := getUint64(rec, keyImages)
	if n <= 1 {
		return drop(tx, nsb, d, rel)
	}
	return putUint64(rec, keyImages, n-1)
}

// deleteOrphans deletes the files of the blobs a committed transaction
// left without holders (drop wrote their tombstones), each unless a record
// names it again by now (a writer of the same blob committed meanwhile).
// The caller holds no content lock.
func (db *DB) deleteOrphans(rel *releases) {
	for _, d := range rel.orphaned {
		// A failure leaves the file and its tombstone; CollectGarbage
		// removes it.
		_, _ = db.removeGarbage(d)
	}
}

// updateReleasing runs fn in a (batched) write transaction, then deletes
// the files its commit orphaned. fn may run more than once (batch); rel
// starts empty on every run.
func (db *DB) updateReleasing(ns string, fn func(tx *bolt.Tx, rel *releases) error) error {
	return db.commitReleasing(ns, db.batch, fn)
}

// deleteReleasing is updateReleasing for a delete, which only frees
// space: its commit may use the reserve (updateFreeing), and once the
// orphaned files are gone the reserve is restored if there is room.
func (db *DB) deleteReleasing(ns string, fn func(tx *bolt.Tx, rel *releases) error) error {
	err := db.commitReleasing(ns, db.updateFreeing, fn)
	db.restoreReserve()
	return err
}

func (db *DB) commitReleasing(ns string, commit func(func(*bolt.Tx) error) error, fn func(tx *bolt.Tx, rel *releases) error) error {
	rel := &releases{ns: ns}
	err := commit(func(tx *bolt.Tx) error {
		*rel = releases{ns: ns}
		return fn(tx, rel)
	})
	if err != nil {
		return err
	}
	db.deleteOrphans(rel)
	return nil
}

func (db contentStore) Stat(ns string, d digest.Digest) (Blob, error) {
	return db.getBlob(ns, d, false)
}

func (db *DB) getBlob(ns string, d digest.Digest, withLabels bool) (Blob, error) {
	if err := names.ValidateDigest(d); err != nil {
		return Blob{}, err
	}
	var b Blob
	err := db.bolt.View(func(tx *bolt.Tx) error {
		nsb, err := namespaceBucket(tx, ns)
		if err != nil {
			return err
		}
		size, ok := db.visible(tx, ns, d)
		if !ok {
			return errors.WithMessagef(ErrNotFound, "blob %s not found in namespace %q", d, ns)
		}
		b = Blob{Digest: d, Size: size}
		if withLabels {
			b.Labels = map[string]string{}
		}
		if rec := heldBlob(nsb, d); rec != nil {
			readHold(&b, rec, withLabels)
		} else {
			b.CreatedAt = getTime(contentBucket(tx).Bucket([]byte(d)), keyCreatedAt)
			b.Times = Times{b.CreatedAt, b.CreatedAt}
		}
		return nil
	})
	return b, err
}

func readHold(b *Blob, rec *bolt.Bucket, withLabels bool) {
	b.Held = true
	b.InUse = getUint64(rec, keyImages) > 0
	if withLabels {
		b.Labels = readLabels(labelsOf(rec))
	}
	b.CreatedAt = getTime(rec, keyCreatedAt)
	b.Times = holdTimes(rec)
}

func (db contentStore) List(ns string) ([]Blob, error) {
	var list []Blob
	err := db.bolt.View(func(tx *bolt.Tx) error {
		nsb, err := namespaceBucket(tx, ns)
		if err != nil {
			return err
		}
		bb, err := subBucket(nsData(nsb), bucketBlobs)
		if err != nil {
			return err
		}
		return bb.ForEachBucket(func(k []byte) error {
			rec := bb.Bucket(k)
			b := Blob{Digest: digest.Digest(k), Size: getInt64(rec, keySize)}
			readHold(&b, rec, false)
			list = append(list, b)
			return nil
		})
	})
	return list, err
}

func (db contentStore) Open(ns string, d digest.Digest) (*os.File, error) {
	b, err := db.Stat(ns, d)
	if err != nil {
		return nil, err
	}
	f, err := db.blobs.Open(d, b.Size)
	switch {
	case err == nil:
		return f, nil
	case errors.Is(err, os.ErrNotExist):
		// Its last holder dropped it since Stat looked.
		return nil, errors.WithMessagef(ErrNotFound, "blob %s not found in namespace %q", d, ns)
	case errors.Is(err, blobs.ErrUnsafe), errors.Is(err, blobs.ErrDamaged):
		return nil, errors.WithMessagef(err, "blob %s in namespace %q is not served, its file in the store is not the blob's "+
			"(writing the blob's bytes again repairs it)", d, ns)
	default:
		return nil, errors.WithMessagef(err, "open blob %s", d)
	}
}

func (db contentStore) Delete(ns string, d digest.Digest) error {
	if err := names.ValidateDigest(d); err != nil {
		return err
	}
	return db.deleteReleasing(ns, func(tx *bolt.Tx, rel *releases) error {
		nsb, err := namespaceBucket(tx, ns)
		if err != nil {
			return err
		}
		rec := heldBlob(nsb, d)
		if rec == nil {
			return errors.WithMessagef(ErrNotFound, "blob %s not found in namespace %q", d, ns)
		}
		if n := getUint64(rec, keyImages); n > 0 {
			return errors.WithMessagef(ErrInUse, "blob %s is in use by %d image(s) of namespace %q", d, n, ns)
		}
		if err := touchDir(nsb, DirBlobs, now()); err != nil {
			return err
		}
		return drop(tx, nsb, d, rel)
	})
}

// BlobWriter is an ingest of one blob into a namespace. Its methods may be
// called from several goroutines (FUSE requests on one handle).
type BlobWriter struct {
	db   *DB
	ns   string
	nsID uint64 // 0: whichever namespace is called ns at Commit
	room int64  // what ns's quota left at the start (NoQuota: none); see checkRoom

	mu        sync.Mutex
	w         *blobs.Writer
	committed bool
	// writeErr is the first write that failed other than by its offset (a
	// full disk, an I/O error): the bytes are incomplete, and Commit
	// answers with it rather than with a digest mismatch, so a full disk
	// is ENOSPC at close too, never EBADMSG.
	writeErr error
}

func (db contentStore) Writer(ns string, nsID uint64, d digest.Digest) (*BlobWriter, error) {
	return db.writeBlob(ns, nsID, d, false)
}

func (db contentStore) Rewriter(ns string, nsID uint64, d digest.Digest) (*BlobWriter, error) {
	return db.writeBlob(ns, nsID, d, true)
}

func (db *DB) writeBlob(ns string, nsID uint64, d digest.Digest, repair bool) (*BlobWriter, error) {
	if err := names.ValidateDigest(d); err != nil {
		return nil, err
	}
	visible := false
	room := NoQuota
	err := db.bolt.View(func(tx *bolt.Tx) error {
		nsb, err := namespaceWithID(tx, ns, nsID)
		if err != nil {
			return err
		}
		room = roomLeft(nsb)
		_, visible = db.visible(tx, ns, d)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if visible && !repair {
		return nil, errors.WithMessagef(ErrExists, "blob %s already exists in namespace %q", d, ns)
	}
	w, err := db.blobs.NewWriter(d)
	if err != nil {
		return nil, errors.WithMessagef(err, "ingest blob %s into namespace %q", d, ns)
	}
	return &BlobWriter{db: db, ns: ns, nsID: nsID, room: room, w: w}, nil
}

var _ io.Writer = (*BlobWriter)(nil)

// Write appends p.
func (w *BlobWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.committed {
		return 0, w.errCommitted()
	}
	if err := w.checkRoom(len(p)); err != nil {
		return 0, err
	}
	n, err := w.w.Write(p)
	return n, w.wrapWriteErr(err)
}

// WriteAt accepts only sequential writes (off == Size()).
func (w *BlobWriter) WriteAt(p []byte, off int64) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.committed {
		return 0, w.errCommitted()
	}
	if err := w.checkRoom(len(p)); err != nil {
		return 0, err
	}
	n, err := w.w.WriteAt(p, off)
	return n, w.wrapWriteErr(err)
}

func (w *BlobWriter) errCommitted() error {
	return errors.WithMessagef(ErrReadOnly, "blob %s in namespace %q is committed and read-only", w.w.Expected(), w.ns)
}

func (w *BlobWriter) wrapWriteErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, blobs.ErrNonSequentialWrite):
		return errors.WithMessagef(ErrInvalidArgument, "blob %s in namespace %q: %v", w.w.Expected(), w.ns, err)
	default:
		err = errors.WithMessagef(err, "write blob %s in namespace %q", w.w.Expected(), w.ns)
		if w.writeErr == nil {
			w.writeErr = err
		}
		return err
	}
}

// Size is the number of bytes written so far.
func (w *BlobWriter) Size() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.Size()
}

// Commit verifies the digest (ErrDigestMismatch: nothing is kept), fsyncs,
// publishes the file and records that ns holds it, in that order. A second
// Commit after success is a no-op returning nil.
func (w *BlobWriter) Commit() error {
	return w.commit(nil)
}

// commit is Commit; labels (if any) are set on ns's hold of the blob in
// the transaction that records it.
func (w *BlobWriter) commit(labels map[string]string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.committed {
		return nil
	}
	d := w.w.Expected()
	if w.writeErr != nil {
		_ = w.w.Abort()
		return errors.WithMessage(w.writeErr, "nothing is kept, because an earlier write failed")
	}
	// Verify and fsync before taking the content lock: a large blob's
	// fsync must not hold up other commits.
	if err := w.w.Prepare(); err != nil { // a failed Prepare aborts the ingest
		if errors.Is(err, blobs.ErrDigestMismatch) {
			return errors.WithMessagef(ErrDigestMismatch, "blob %s in namespace %q: the %d bytes written hash to %s", d, w.ns, w.w.Size(), w.w.Digest())
		}
		return errors.WithMessagef(err, "write blob %s in namespace %q", d, w.ns)
	}
	size := w.w.Size()
	db := w.db

	unlock := db.lockContent(d)
	defer unlock()
	if err := db.intendLocked(d); err != nil {
		_ = w.w.Abort()
		return errors.WithMessagef(err, "publish blob %s in namespace %q", d, w.ns)
	}
	if _, err := w.w.Commit(); err != nil { // prepared: only publishing can fail now
		return errors.WithMessagef(err, "publish blob %s in namespace %q", d, w.ns)
	}
	err := db.batch(func(tx *bolt.Tx) error {
		nsb, err := namespaceWithID(tx, w.ns, w.nsID)
		if err != nil {
			return errors.WithMessagef(err, "blob %s was written, but", d)
		}
		t := now()
		if heldBlob(nsb, d) == nil {
			if err := touchDir(nsb, DirBlobs, t); err != nil {
				return err
			}
		}
		rec, err := hold(tx, nsb, w.ns, d, size, t)
		if err != nil {
			return err
		}
		if err := mergeLabels(rec, Object{Namespace: w.ns, Blob: d}, labels); err != nil {
			return err
		}
		// Images that miss it, here or (shared) anywhere, claim it now.
		return db.claimArrived(tx, d, size)
	})
	if err != nil {
		db.abandonLocked(d)
		return err
	}
	w.committed = true
	return nil
}

// Abort discards the ingest. Safe after Commit.
func (w *BlobWriter) Abort() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.committed {
		return nil
	}
	return w.w.Abort()
}

// namespaceWithID returns the namespace called name, which must have ID id
// unless id is 0 (ErrNotFound: it was deleted, perhaps made again).
func namespaceWithID(tx *bolt.Tx, name string, id uint64) (*bolt.Bucket, error) {
	nsb, err := namespaceBucket(tx, name)
	if id == 0 {
		return nsb, err
	}
	if err != nil || getUint64(nsb, keyID) != id {
		return nil, errors.WithMessagef(ErrNotFound, "namespace %q was deleted", name)
	}
	return nsb, nil
}

func (db contentStore) RemoveDir(ns string) error {
	return db.bolt.View(func(tx *bolt.Tx) error {
		nsb, err := namespaceBucket(tx, ns)
		if err != nil {
			return err
		}
		if !isEmptyBucket(nsSub(nsb, bucketBlobs)) {
			return errors.WithMessagef(ErrNotEmpty, "blobs/ of namespace %q is not empty", ns)
		}
		return nil
	})
}
