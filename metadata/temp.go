package metadata

import (
	"github.com/nsfs/nsfs/names"
	"github.com/opencontainers/go-digest"
	"github.com/pkg/errors"
	bolt "go.etcd.io/bbolt"
)

// TempWriter starts a temporary ingest into ns: the bytes of a blob whose
// digest its writer gives only at the end (skopeo's oci-put-blob…,
// crane's <hex><random>, rsync's .<hex>.XXXXXX in blobs/sha256, renamed
// to the digest when written). CommitAs names the digest and commits it
// as Commit does a Writer's; Abort discards it. Nothing in the store
// records it before then: left behind, its file is an unfinished ingest,
// which gc collects after its grace period, and it never counts as a blob
// ns holds (rmdir). nsID as for Writer.
func (db *DB) TempWriter(ns string, nsID uint64) (*BlobWriter, error) {
	room := NoQuota
	err := db.bolt.View(func(tx *bolt.Tx) error {
		nsb, err := namespaceWithID(tx, ns, nsID)
		if err != nil {
			return err
		}
		room = roomLeft(nsb)
		return nil
	})
	if err != nil {
		return nil, err
	}
	w, err := db.blobs.NewTempWriter()
	if err != nil {
		return nil, errors.WithMessagef(err, "temporary ingest into namespace %q", ns)
	}
	return &BlobWriter{db: db, ns: ns, nsID: nsID, room: room, w: w}, nil
}

// CommitAs commits a temporary ingest (TempWriter) as blob d:
// ErrInvalidArgument when d is no valid digest or labels break a label
// rule, ErrDigestMismatch when the bytes hash to another digest; after
// those the ingest goes on as it was (a rename that fails changes
// nothing), and its writer may commit it as its real digest or Abort it.
// Otherwise as Commit. When ns holds d already, its
// bytes are the same and nothing changes; when ns could only see it, ns
// now holds it. labels (set on the temporary file, as rsync -X does
// before its rename) are added to the blob's in the same transaction;
// labels the blob has and they do not name stay.
func (w *BlobWriter) CommitAs(d digest.Digest, labels map[string]string) error {
	o := Object{Namespace: w.ns, Blob: d}
	if err := names.ValidateDigest(d); err != nil {
		return err
	}
	if err := names.ValidateLabels(o, labels); err != nil {
		return err
	}
	if got := w.Digest(); got != d {
		return errors.WithMessagef(ErrDigestMismatch, "blob %s in namespace %q: the %d bytes written hash to %s", d, w.ns, w.Size(), got)
	}
	if err := w.w.Expect(d); err != nil {
		return errors.WithMessagef(ErrInvalidArgument, "namespace %q: %v", w.ns, err)
	}
	return w.commit(labels)
}

// CommitWithLabels is Commit, with labels (set on the file while it was
// written: cp -a and tar --xattrs set them before the close that commits)
// added to the blob's in the transaction that records it; labels the
// blob has and they do not name stay. ErrInvalidArgument when they break
// a label rule (nothing is kept).
func (w *BlobWriter) CommitWithLabels(labels map[string]string) error {
	if err := names.ValidateLabels(Object{Namespace: w.ns, Blob: w.w.Expected()}, labels); err != nil {
		_ = w.Abort()
		return err
	}
	return w.commit(labels)
}

// mergeLabels sets labels on rec, the hold of blob o, within the limit on
// all of its labels.
func mergeLabels(rec *bolt.Bucket, o Object, labels map[string]string) error {
	if len(labels) == 0 {
		return nil
	}
	lb := labelsOf(rec)
	for key, value := range labels {
		old := lb.Get([]byte(key))
		if err := checkLabelChange(o, key, value, string(old), old != nil, func() int { return bucketLabelsSize(lb) }, nil); err != nil {
			return err
		}
		if err := lb.Put([]byte(key), []byte(value)); err != nil {
			return err
		}
	}
	return nil
}

// Digest is the digest of the bytes written so far.
func (w *BlobWriter) Digest() digest.Digest {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.Digest()
}

// Removed reports whether the ingest's file was collected (gc, after its
// grace period) or removed: nothing can be committed from it any more.
func (w *BlobWriter) Removed() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.committed || w.w.Removed()
}
