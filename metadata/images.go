package metadata

import (
	"context"
	"encoding/binary"
	"io"
	"time"

	"github.com/nsfs/nsfs/blobs"
	"github.com/nsfs/nsfs/imagegraph"
	"github.com/nsfs/nsfs/names"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/pkg/errors"
	bolt "go.etcd.io/bbolt"
	"oras.land/oras-go/v2/content"
)

// MaxManifestSize bounds an image's manifest or index (ErrTooLarge): the
// image graph's document limit.
const MaxManifestSize = imagegraph.MaxDocumentSize

// Image is a named reference to a manifest or index in a namespace.
type Image struct {
	Namespace string
	Name      string // the ref, a clean relative path
	ID        uint64 // never reused; kept by replace and rename; fs/ inode
	Target    ocispec.Descriptor
	Labels    map[string]string
	CreatedAt time.Time
	UpdatedAt time.Time // mtime: its target changed, or utimes set it
	ChangedAt time.Time // ctime: UpdatedAt, or later (labels, utimes; times.go)
}

// ImageStore keeps the images of each namespace and the directory tree
// their refs make: images/ of a namespace, where the ref
// "docker.io/library/redis:latest" is the file redis:latest in directory
// docker.io/library. `cp manifest.json images/redis` reaches ReserveID at
// create and Put at fsync and close, `stat images/redis` Stat (Lookup for
// the name), `rm` Delete, `mv` Rename (RenamePending while the image is
// still being written), `ln` Link, `ls` ReadDir, `mkdir` MakeDir and
// `rmdir` RemoveDir. An image's labels are the LabelStore's; an image
// still being written keeps its own in PendingLabels.
type ImageStore interface {
	// Put creates or replaces image w.Ref in w.Namespace with w.Manifest
	// as its target. The bytes must be an OCI or Docker manifest or index
	// (ErrInvalidArgument, the message says what is wrong), at most
	// MaxManifestSize (ErrTooLarge). A blob a manifest names that the
	// namespace cannot see yet makes the image incomplete (incomplete.go):
	// it claims the blob once it becomes visible. Sizes named must match
	// the visible blobs' (ErrInvalidArgument). The
	// manifest is stored as a blob; the namespace claims (holds) the
	// manifest and every visible blob it references, recursively through
	// present index children. On replace the old target's blobs that no
	// other image references are released. A component of the ref that is
	// an image gives ErrNotDirectory; a ref naming a directory gives
	// ErrIsDirectory. Which image is written, and in which namespace, is
	// checked inside the transaction (ImageWrite). Nothing changes on
	// error.
	//
	// Below an index's present children, blobs are claimed when visible
	// and skipped otherwise (a pull of some platforms of an index), and a
	// child that is not a parsable manifest is claimed by itself.
	Put(w ImageWrite) (Image, error)
	// Stat returns one image without its labels (Labels is nil: a stat
	// needs no map built on every getattr), or ErrNotFound.
	Stat(ns, ref string) (Image, error)
	// Delete deletes an image, then releases the blobs that no other image
	// of ns references (they leave the disk when no namespace holds them).
	Delete(ns, ref string) error
	// Rename renames image from of fromNS to to of toNS, replacing to
	// atomically (the replaced image's blobs are released as by Delete)
	// unless noReplace is set (ErrExists, checked in the transaction:
	// RENAME_NOREPLACE). The image keeps its ID. Renaming onto a directory
	// is ErrIsDirectory. Namespaces differing is ErrCrossNamespace, and so
	// is renaming a directory of images/ (metadata renames images only; as
	// across filesystems, mv then copies the tree and removes the source).
	//
	// The image also keeps its labels, creation and update times (a rename
	// changes neither the manifest nor its labels). from == to is a no-op.
	Rename(fromNS, from, toNS, to string, noReplace bool) error
	// RenamePending is Rename for a rename that may be of an image being
	// written. When from is an image of the store, it is Rename. When from
	// names nothing, the rename is the pending image's, which its next
	// commit stores under to: in the same transaction, what to names is
	// released now, as a rename replaces its target (as by Delete: a
	// directory is ErrIsDirectory), or with noReplace the rename is
	// ErrExists when to is an image or a directory (ErrNotDirectory when a
	// component of it is an image). pending says which of the two it was.
	RenamePending(fromNS, from, toNS, to string, noReplace bool) (pending bool, err error)
	// Link creates image to of toNS with the target and labels of image
	// from of fromNS (`ctr images tag`), with a new ID. ErrExists when to
	// exists (an image or a directory), ErrNotDirectory when a component
	// of it is an image, ErrCrossNamespace when the namespaces differ.
	Link(fromNS, from, toNS, to string) (Image, error)
	// ReserveID hands out an image ID ahead of the image (fs/ gives a file
	// being created its final inode number, recordIno(ID), before it is
	// committed; Put with ImageWrite.Create then creates the image with
	// it). A reserved ID that is never used is simply never used.
	ReserveID() (uint64, error)

	// Lookup resolves path below images/ ("" is images/ itself) to an
	// image or a directory (ErrNotFound).
	Lookup(ns, path string) (Entry, error)
	// ReadDir lists directory dir ("" for images/) from one snapshot,
	// sorted by name (ErrNotFound, ErrNotDirectory).
	ReadDir(ns, dir string) ([]Entry, error)
	// MakeDir records directory dir (ErrExists when dir is an image or a
	// directory already; ErrNotFound when its parent is not a directory;
	// ErrNotDirectory when a component is an image).
	MakeDir(ns, dir string) error
	// RemoveDir removes directory dir: ErrNotEmpty while anything lies
	// below it, ErrNotDirectory for an image, ErrNotFound. dir "" (images/
	// itself) succeeds when the namespace has no images and no
	// directories, and images/ stays.
	RemoveDir(ns, dir string) error
}

// Images is the store's ImageStore.
func (db *DB) Images() ImageStore { return imageStore{db} }

// imageStore is the DB seen as its ImageStore.
type imageStore struct{ *DB }

// imageRecord is the value of nsdata/<ns id>/images/<ref>: everything a
// listing shows, so that listing a directory reads one value per entry.
type imageRecord struct {
	id        uint64
	createdAt time.Time
	updatedAt time.Time
	changedAt time.Time // zero, or a ctime later than updatedAt (times.go)
	target    ocispec.Descriptor
}

// imageRecordVersion is the first byte of an encoded imageRecord.
const imageRecordVersion = 1

// encode lays a record out as: version byte, id, createdat and updatedat
// (Unix nanoseconds), target size (8 bytes big-endian each), then the
// target media type and digest, each as a uvarint length and bytes; then,
// when set, changedat (Unix nanoseconds).
func (r imageRecord) encode() []byte {
	b := make([]byte, 0, 1+4*8+2*binary.MaxVarintLen16+len(r.target.MediaType)+len(r.target.Digest))
	b = append(b, imageRecordVersion)
	b = binary.BigEndian.AppendUint64(b, r.id)
	b = binary.BigEndian.AppendUint64(b, uint64(r.createdAt.UnixNano()))
	b = binary.BigEndian.AppendUint64(b, uint64(r.updatedAt.UnixNano()))
	b = binary.BigEndian.AppendUint64(b, uint64(r.target.Size))
	for _, s := range []string{r.target.MediaType, string(r.target.Digest)} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	if !r.changedAt.IsZero() {
		b = binary.BigEndian.AppendUint64(b, uint64(r.changedAt.UnixNano()))
	}
	return b
}

func decodeImageRecord(b []byte) (imageRecord, error) {
	bad := func() error { return errors.WithMessagef(errCorrupt, "image record of %d bytes is malformed", len(b)) }
	if len(b) < 1+4*8 || b[0] != imageRecordVersion {
		return imageRecord{}, bad()
	}
	u := func(i int) uint64 { return binary.BigEndian.Uint64(b[1+8*i:]) }
	r := imageRecord{
		id:        u(0),
		createdAt: time.Unix(0, int64(u(1))).UTC(),
		updatedAt: time.Unix(0, int64(u(2))).UTC(),
	}
	r.target.Size = int64(u(3))
	rest := b[1+4*8:]
	var strs [2][]byte
	for i := range strs {
		n, k := binary.Uvarint(rest)
		if k <= 0 || uint64(len(rest)-k) < n {
			return imageRecord{}, bad()
		}
		strs[i] = rest[k : k+int(n)]
		rest = rest[k+int(n):]
	}
	// Interned: records decoded in a listing share their media types.
	r.target.MediaType, r.target.Digest = imagegraph.Intern(strs[0]), digest.Digest(string(strs[1]))
	if len(rest) >= 8 {
		r.changedAt = time.Unix(0, int64(binary.BigEndian.Uint64(rest))).UTC()
	}
	return r, nil
}

// getImageRecord reads image ref's record or returns ErrNotFound.
func getImageRecord(nsb *bolt.Bucket, ns, ref string) (imageRecord, error) {
	images, err := subBucket(nsData(nsb), bucketImages)
	if err != nil {
		return imageRecord{}, err
	}
	v := images.Get([]byte(ref))
	if v == nil {
		return imageRecord{}, errors.WithMessagef(ErrNotFound, "image %q not found in namespace %q", shorten(ref), ns)
	}
	return decodeImageRecord(v)
}

// isImage reports whether ref is an image of the namespace.
func isImage(nsb *bolt.Bucket, ref string) bool {
	return nsSub(nsb, bucketImages).Get([]byte(ref)) != nil
}

// imageData returns nsdata/<ns id>/imagedata/<id>/ (its labels/, blobs/
// and missing/ keys).
func imageData(nsb *bolt.Bucket, id uint64) (*bolt.Bucket, error) {
	all, err := subBucket(nsData(nsb), bucketImageData)
	if err != nil {
		return nil, err
	}
	return subBucket(all, encodeUint64(id))
}

// toImage makes the public Image of a record; labels only when withLabels
// (listings skip them for speed).
func toImage(nsb *bolt.Bucket, ns, ref string, r imageRecord, withLabels bool) Image {
	img := Image{
		Namespace: ns,
		Name:      ref,
		ID:        r.id,
		Target:    r.target,
		CreatedAt: r.createdAt,
		UpdatedAt: r.updatedAt,
		ChangedAt: r.times().Changed,
	}
	if withLabels {
		var data *bolt.Bucket
		if d, err := imageData(nsb, r.id); err == nil {
			data = d
		}
		img.Labels = readLabels(labelsOf(data))
	}
	return img
}

// checkRefPlacement applies the path rules to a ref about to become an
// image: no component of it may be an image (ErrNotDirectory) and it may
// not be a directory (ErrIsDirectory).
func checkRefPlacement(nsb *bolt.Bucket, ns, ref string) error {
	if parent, ok := imageAbove(nsb, ref); ok {
		return errors.WithMessagef(ErrNotDirectory, "image ref %q: %q is an image, not a directory, in namespace %q", shorten(ref), shorten(parent), ns)
	}
	if isDir(nsb, ref) {
		return errors.WithMessagef(ErrIsDirectory, "image ref %q is a directory in namespace %q", shorten(ref), ns)
	}
	return nil
}

// imageAbove returns the first proper prefix of path that is an image.
func imageAbove(nsb *bolt.Bucket, path string) (string, bool) {
	images := nsSub(nsb, bucketImages)
	for i := 0; i < len(path); i++ {
		if path[i] == '/' && images.Get([]byte(path[:i])) != nil {
			return path[:i], true
		}
	}
	return "", false
}

// ImageWrite is one write of an image's manifest (ImageStore.Put).
type ImageWrite struct {
	Namespace string
	// NamespaceID, if not zero, must be the ID of the namespace named
	// Namespace: a namespace deleted and made again under the same name is
	// another namespace (ErrNotFound, "namespace %q was deleted").
	NamespaceID uint64
	Ref         string
	Manifest    []byte
	// ID, if zero, creates the image or replaces whatever image Ref names.
	// If not zero, it names the image being written: when Ref exists it must
	// be this image, and when it does not, the image is created with this
	// ID only if Create is set (an ID from ImageStore.ReserveID). Otherwise
	// the write fails with ErrImageGone (an ErrNotFound naming the ref):
	// the image was renamed, removed or replaced meanwhile.
	ID     uint64
	Create bool
	// Labels are the labels of an image this write creates, set in the same
	// transaction (names.ValidateLabels; an empty value is no label). They are
	// ignored when the write replaces an existing image.
	Labels map[string]string
}

// Disk I/O happens before the locks: the index children are read and
// parsed, and the manifest's bytes are written and fsynced to an ingest
// file; under the content lock and in the transaction only the rename that
// publishes them (when new) and the checks and claims remain.
func (db imageStore) Put(w ImageWrite) (Image, error) {
	ns, ref, manifest := w.Namespace, w.Ref, w.Manifest
	if err := names.ValidateRef(ref); err != nil {
		return Image{}, err
	}
	if len(manifest) > MaxManifestSize {
		return Image{}, errors.WithMessagef(ErrTooLarge, "image %q: manifest is %d bytes, over the 4 MiB limit", shorten(ref), len(manifest))
	}
	if err := names.ValidateLabels(Object{Namespace: ns, Image: ref}, w.Labels); err != nil {
		return Image{}, err
	}
	pm, err := imagegraph.Parse(manifest)
	if err != nil {
		return Image{}, errors.WithMessagef(ErrInvalidArgument, "image %q: %v", shorten(ref), err)
	}
	target := ocispec.Descriptor{
		MediaType: pm.MediaType,
		Digest:    digest.FromBytes(manifest),
		Size:      int64(len(manifest)),
	}
	children := db.readIndexChildren(pm)

	// A new manifest blob is made durable in an ingest file first; only
	// its publication happens under its content lock, before the transaction that
	// records it (doc.go). An existing blob costs no bytes.
	var ingest *blobs.Writer
	if _, err := db.blobs.Stat(target.Digest); err != nil {
		if ingest, err = db.prepareBytes(target.Digest, manifest); err != nil {
			return Image{}, errors.WithMessagef(err, "image %q: store manifest blob %s", shorten(ref), target.Digest)
		}
		defer ingest.Abort()
	}
	unlock := db.lockContent(target.Digest)
	if err := db.intendLocked(target.Digest); err != nil {
		unlock()
		return Image{}, errors.WithMessagef(err, "image %q: store manifest blob %s", shorten(ref), target.Digest)
	}
	if ingest != nil {
		_, err = ingest.Commit()
	} else {
		// Present a moment ago; written again only if it was deleted since.
		_, err = db.blobs.WriteBytes(target.Digest, manifest)
	}
	if err != nil {
		unlock()
		return Image{}, errors.WithMessagef(err, "image %q: store manifest blob %s", shorten(ref), target.Digest)
	}
	var img Image
	rel := &releases{ns: ns}
	err = db.batch(func(tx *bolt.Tx) error {
		*rel = releases{ns: ns}
		var err error
		img, err = db.putImage(tx, w, target, pm, children, rel)
		return err
	})
	if err != nil {
		db.abandonLocked(target.Digest)
		unlock()
		return Image{}, err
	}
	// Unlocked first: an orphaned blob may share the target's stripe.
	unlock()
	db.deleteOrphans(rel)
	return img, nil
}

// prepareBytes writes data to an ingest file of d and fsyncs it; Commit
// publishes it, Abort removes it.
func (db *DB) prepareBytes(d digest.Digest, data []byte) (*blobs.Writer, error) {
	bw, err := db.blobs.NewWriter(d)
	if err != nil {
		return nil, err
	}
	if _, err := bw.Write(data); err != nil {
		_ = bw.Abort()
		return nil, err
	}
	if err := bw.Prepare(); err != nil {
		_ = bw.Abort()
		return nil, err
	}
	return bw, nil
}

// putImage is ImageStore.Put's transaction: every check, then the claims, then
// the release of a replaced image's claims.
func (db *DB) putImage(tx *bolt.Tx, w ImageWrite, target ocispec.Descriptor, pm imagegraph.Document, children map[digest.Digest]imagegraph.Document, rel *releases) (Image, error) {
	ns, ref := w.Namespace, w.Ref
	nsb, err := namespaceWithID(tx, ns, w.NamespaceID)
	if err != nil {
		return Image{}, errors.WithMessagef(err, "image %q", shorten(ref))
	}
	old, err := imageBeingWritten(tx, nsb, w)
	if err != nil {
		return Image{}, err
	}
	if err := checkRefPlacement(nsb, ns, ref); err != nil {
		return Image{}, err
	}
	claims, missing, err := db.manifestClaims(tx, ns, ref, target, pm, children)
	if err != nil {
		return Image{}, err
	}
	t := now()
	rec, data, oldClaims, err := putImageRecord(tx, nsb, w, old, target, t)
	if err != nil {
		return Image{}, err
	}
	if err := clearMissing(tx, ns, data, rec.id); err != nil {
		return Image{}, err
	}
	if err := db.putClaims(tx, nsb, ns, data, claims, t); err != nil {
		return Image{}, err
	}
	if err := putMissing(tx, ns, data, rec.id, missing); err != nil {
		return Image{}, err
	}
	// The manifest blob may be what images elsewhere miss.
	if err := db.claimArrived(tx, target.Digest, target.Size); err != nil {
		return Image{}, err
	}
	// Released after the new claims are counted, so a blob both targets
	// share is never dropped (and its labels kept).
	for _, d := range oldClaims {
		if err := unclaim(tx, nsb, d, rel); err != nil {
			return Image{}, err
		}
	}
	return toImage(nsb, ns, ref, rec, true), nil
}

// imageBeingWritten is the record w.Ref has now (nil: none), once it is
// checked to be the image w names (ImageWrite.ID): ErrImageGone when that
// image was renamed, removed or replaced meanwhile.
func imageBeingWritten(tx *bolt.Tx, nsb *bolt.Bucket, w ImageWrite) (*imageRecord, error) {
	ns, ref := w.Namespace, w.Ref
	images, err := subBucket(nsData(nsb), bucketImages)
	if err != nil {
		return nil, err
	}
	allData, err := subBucket(nsData(nsb), bucketImageData)
	if err != nil {
		return nil, err
	}
	var old *imageRecord
	if v := images.Get([]byte(ref)); v != nil {
		rec, err := decodeImageRecord(v)
		if err != nil {
			return nil, err
		}
		old = &rec
	}
	if w.ID == 0 {
		return old, nil
	}
	switch {
	case old != nil && old.id != w.ID:
		return nil, errors.WithMessagef(ErrImageGone, "image %q in namespace %q is another image now: the one written was renamed, removed or replaced meanwhile", shorten(ref), ns)
	case old == nil && !w.Create:
		return nil, errors.WithMessagef(ErrImageGone, "image %q in namespace %q was renamed or removed meanwhile", shorten(ref), ns)
	case old == nil && allData.Bucket(encodeUint64(w.ID)) != nil:
		return nil, errors.WithMessagef(ErrImageGone, "image %q in namespace %q: the image being created was renamed meanwhile", shorten(ref), ns)
	case old == nil && w.ID > idSequence(tx):
		return nil, errors.WithMessagef(ErrInvalidArgument, "image %q in namespace %q: ID %d was not reserved", shorten(ref), ns, w.ID)
	}
	return old, nil
}

// manifestClaims is what image ref with target claims in ns, with sizes:
// the manifest and every visible blob it references, recursively through
// an index's present children; and what it misses: a manifest's blobs ns
// cannot see yet, with the sizes named (an absent index child or foreign
// layer is skipped). Sizes named must be the visible blobs'
// (ErrInvalidArgument).
func (db *DB) manifestClaims(tx *bolt.Tx, ns, ref string, target ocispec.Descriptor, pm imagegraph.Document, children map[digest.Digest]imagegraph.Document) (claims, missing map[digest.Digest]int64, err error) {
	claims = map[digest.Digest]int64{target.Digest: target.Size}
	missing = map[digest.Digest]int64{}
	for _, r := range pm.Children {
		size, ok := db.visible(tx, ns, r.Digest)
		if !ok {
			if !pm.IsIndex() && !r.Foreign {
				missing[r.Digest] = r.Size
			}
			continue // or an absent child (platform not pulled), a foreign layer
		}
		if size != r.Size {
			return nil, nil, errors.WithMessagef(ErrInvalidArgument, "image %q: blob %s (%s) is %d bytes, but the %s says %d (lying size)", shorten(ref), r.Digest, r.Role, size, pm.Kind(), r.Size)
		}
		claims[r.Digest] = size
	}
	if pm.IsIndex() {
		if err := db.claimBelow(tx, ns, pm, children, claims); err != nil {
			return nil, nil, err
		}
	}
	return claims, missing, nil
}

// putImageRecord writes the record of image w.Ref with target: a replace
// (old not nil) keeps the image's ID, creation time and labels, and
// returns the claims it had; a new image gets w.ID or a new one, and
// w.Labels. data is the image's data bucket, without claims.
func putImageRecord(tx *bolt.Tx, nsb *bolt.Bucket, w ImageWrite, old *imageRecord, target ocispec.Descriptor, t time.Time) (rec imageRecord, data *bolt.Bucket, oldClaims []digest.Digest, err error) {
	allData := nsSub(nsb, bucketImageData)
	rec = imageRecord{createdAt: t, updatedAt: t, target: target}
	if old != nil {
		rec.id, rec.createdAt = old.id, old.createdAt
		if data, err = subBucket(allData, encodeUint64(old.id)); err != nil {
			return rec, nil, nil, err
		}
		oldClaims = claimSet(data)
		if err := claimsOf(data).clear(); err != nil {
			return rec, nil, nil, err
		}
	} else {
		if rec.id = w.ID; rec.id == 0 {
			if rec.id, err = nextID(tx); err != nil {
				return rec, nil, nil, err
			}
		}
		if data, err = allData.CreateBucket(encodeUint64(rec.id)); err != nil {
			return rec, nil, nil, err
		}
		kept := nonEmptyLabels(w.Labels)
		if err := checkLabelsFit(Object{Namespace: w.Namespace, Image: w.Ref}, names.LabelsSize(kept)); err != nil {
			return rec, nil, nil, err
		}
		if err := writeLabels(data, kept); err != nil {
			return rec, nil, nil, err
		}
	}
	if !isImage(nsb, w.Ref) {
		if err := imageEntryAdding(nsb, w.Ref, t); err != nil {
			return rec, nil, nil, err
		}
	}
	if err := nsSub(nsb, bucketImages).Put([]byte(w.Ref), rec.encode()); err != nil {
		return rec, nil, nil, err
	}
	return rec, data, oldClaims, nil
}

// putClaims records claims as the image's (in data) and as the
// namespace's holds.
func (db *DB) putClaims(tx *bolt.Tx, nsb *bolt.Bucket, ns string, data *bolt.Bucket, claims map[digest.Digest]int64, t time.Time) error {
	cb := claimsOf(data)
	for _, d := range sortedKeysOf(claims) {
		size := claims[d]
		if err := cb.Put([]byte(d), member); err != nil {
			return err
		}
		newHold := heldBlob(nsb, d) == nil
		if err := claim(tx, nsb, ns, d, size, t); err != nil {
			return err
		}
		if err := db.shareableHoldArrived(tx, nsb, d, size, newHold); err != nil {
			return err
		}
	}
	return nil
}

// readIndexChildren reads and parses, from disk and before any lock, the
// documents below an index (imagegraph.Walk: those there, verified and
// parsable, at most imagegraph.MaxIndexDepth indexes deep); claimBelow
// then only looks them up. Whether ns may see them is decided in the
// transaction.
func (db *DB) readIndexChildren(pm imagegraph.Document) map[digest.Digest]imagegraph.Document {
	children := map[digest.Digest]imagegraph.Document{}
	if !pm.IsIndex() {
		return children
	}
	fetch := content.FetcherFunc(func(_ context.Context, desc ocispec.Descriptor) (io.ReadCloser, error) {
		return db.blobs.Open(desc.Digest, -1)
	})
	_ = imagegraph.Walk(context.Background(), fetch, pm, func(_ imagegraph.Document, c imagegraph.Child, _ int, doc *imagegraph.Document) error {
		if doc != nil {
			children[c.Digest] = *doc
		}
		return nil
	})
	return children
}

// claimBelow adds to claims what ns can see below index pm, whose own
// children manifestClaims checked and claimed: an imagegraph.Walker over
// the documents readIndexChildren parsed, through the visible nodes, and
// below an index only (a manifest's blobs are claimed, whatever their
// media type, and nothing below them). It is lenient: what is absent or
// was not parsed is skipped, as an index may be pulled partially.
func (db *DB) claimBelow(tx *bolt.Tx, ns string, pm imagegraph.Document, children map[digest.Digest]imagegraph.Document, claims map[digest.Digest]int64) error {
	w := imagegraph.Walker{Enter: func(n *imagegraph.Node) (*imagegraph.Document, error) {
		size, ok := db.visible(tx, ns, n.Digest)
		if !ok {
			return nil, imagegraph.Pass
		}
		claims[n.Digest] = size
		doc, parsed := children[n.Digest]
		underIndex := n.Parent == nil || n.Parent.Doc.IsIndex()
		if !parsed || !underIndex || !imagegraph.IsDocument(n.MediaType) {
			return nil, nil
		}
		return &doc, nil
	}}
	return w.Walk(pm)
}

// readSmallBlob reads a blob of at most MaxManifestSize bytes.
func (db *DB) readSmallBlob(d digest.Digest) ([]byte, error) {
	f, err := db.blobs.Open(d, -1)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxManifestSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > MaxManifestSize {
		return nil, errors.WithMessagef(ErrTooLarge, "blob %s is over the manifest size limit", d)
	}
	return data, nil
}

// claimSet lists the digests an image claims, from its imagedata bucket.
func claimSet(data *bolt.Bucket) []digest.Digest {
	var set []digest.Digest
	_ = claimsOf(data).ForEach(func(k, _ []byte) error {
		set = append(set, digest.Digest(k))
		return nil
	})
	return set
}

// releaseImage deletes image ref's record and data and releases its
// claims.
func releaseImage(tx *bolt.Tx, nsb *bolt.Bucket, ns, ref string, rel *releases) error {
	rec, err := getImageRecord(nsb, ns, ref)
	if err != nil {
		return err
	}
	data, err := imageData(nsb, rec.id)
	if err != nil {
		return err
	}
	claims := claimSet(data)
	if err := clearMissing(tx, ns, data, rec.id); err != nil {
		return err
	}
	if err := nsSub(nsb, bucketImageData).DeleteBucket(encodeUint64(rec.id)); err != nil {
		return err
	}
	if err := nsSub(nsb, bucketImages).Delete([]byte(ref)); err != nil {
		return err
	}
	if err := imageEntryRemoved(nsb, ref, now()); err != nil {
		return err
	}
	for _, d := range claims {
		if err := unclaim(tx, nsb, d, rel); err != nil {
			return err
		}
	}
	return nil
}

func (db imageStore) Stat(ns, ref string) (Image, error) {
	return db.getImage(ns, ref, false)
}

func (db *DB) getImage(ns, ref string, withLabels bool) (Image, error) {
	var img Image
	err := db.bolt.View(func(tx *bolt.Tx) error {
		nsb, err := namespaceBucket(tx, ns)
		if err != nil {
			return err
		}
		rec, err := getImageRecord(nsb, ns, ref)
		if err != nil {
			return err
		}
		img = toImage(nsb, ns, ref, rec, withLabels)
		return nil
	})
	return img, err
}

func (db imageStore) Delete(ns, ref string) error {
	return db.deleteReleasing(ns, func(tx *bolt.Tx, rel *releases) error {
		nsb, err := namespaceBucket(tx, ns)
		if err != nil {
			return err
		}
		return deleteImage(tx, nsb, ns, ref, rel)
	})
}

// deleteImage is ImageStore.Delete's transaction.
func deleteImage(tx *bolt.Tx, nsb *bolt.Bucket, ns, ref string, rel *releases) error {
	if !isImage(nsb, ref) && isDir(nsb, ref) {
		return errors.WithMessagef(ErrIsDirectory, "image ref %q is a directory in namespace %q", shorten(ref), ns)
	}
	if err := releaseImage(tx, nsb, ns, ref, rel); err != nil {
		return err
	}
	if err := refRemoved(nsb, now()); err != nil {
		return err
	}
	return keepParentDir(nsb, ref)
}

// checkSameNamespace refuses to rename or link an image into another
// namespace: ErrCrossNamespace, which fs/ answers with EXDEV, so that mv
// copies the image (moving no blob bytes under the shared policy) and ln
// fails.
func checkSameNamespace(op, fromNS, from, toNS string) error {
	if fromNS != toNS {
		return errors.WithMessagef(ErrCrossNamespace, "%s image %q of namespace %q into namespace %q: images move between namespaces only by copy", op, shorten(from), fromNS, toNS)
	}
	return nil
}

func (db imageStore) Rename(fromNS, from, toNS, to string, noReplace bool) error {
	_, err := db.renameImage(fromNS, from, toNS, to, noReplace, nil)
	return err
}

// renameImage is ImageStore.Rename; when from names nothing, absent (if not nil)
// decides in the same transaction instead of ErrNotFound, and wasAbsent
// says so.
func (db *DB) renameImage(fromNS, from, toNS, to string, noReplace bool, absent func(tx *bolt.Tx, nsb *bolt.Bucket, rel *releases) error) (wasAbsent bool, err error) {
	if err := checkSameNamespace("rename", fromNS, from, toNS); err != nil {
		return false, err
	}
	ns := fromNS
	for _, ref := range []string{from, to} {
		if err := names.ValidateRef(ref); err != nil {
			return false, err
		}
	}
	err = db.updateReleasing(ns, func(tx *bolt.Tx, rel *releases) error {
		wasAbsent = false
		nsb, err := namespaceBucket(tx, ns)
		if err != nil {
			return err
		}
		if !isImage(nsb, from) && isDir(nsb, from) {
			return errors.WithMessagef(ErrCrossNamespace, "rename images/%s in namespace %q: it is a directory, and only images can be renamed (copy it instead)", shorten(from), ns)
		}
		rec, err := getImageRecord(nsb, ns, from)
		if IsNotFound(err) && absent != nil {
			wasAbsent = true
			return absent(tx, nsb, rel)
		}
		if err != nil {
			return err
		}
		if from == to {
			return nil
		}
		if noReplace && isImage(nsb, to) {
			return errors.WithMessagef(ErrExists, "rename image %q to %q in namespace %q: %q already exists", shorten(from), shorten(to), ns, shorten(to))
		}
		if err := checkRefPlacement(nsb, ns, to); err != nil {
			return err
		}
		// Before the release of a replaced one, which may leave to's
		// directory empty for a moment.
		t := now()
		if err := imageEntryAdding(nsb, to, t); err != nil {
			return err
		}
		if isImage(nsb, to) {
			if err := releaseImage(tx, nsb, ns, to, rel); err != nil {
				return err
			}
		}
		// Labels and claims live under the ID, which moves with the record.
		images := nsSub(nsb, bucketImages)
		if err := images.Put([]byte(to), rec.encode()); err != nil {
			return err
		}
		if err := images.Delete([]byte(from)); err != nil {
			return err
		}
		if err := imageEntryRemoved(nsb, from, t); err != nil {
			return err
		}
		return keepParentDir(nsb, from)
	})
	return wasAbsent, err
}

func (db imageStore) Link(fromNS, from, toNS, to string) (Image, error) {
	if err := checkSameNamespace("link", fromNS, from, toNS); err != nil {
		return Image{}, err
	}
	ns := fromNS
	for _, ref := range []string{from, to} {
		if err := names.ValidateRef(ref); err != nil {
			return Image{}, err
		}
	}
	var img Image
	err := db.batch(func(tx *bolt.Tx) error {
		nsb, err := namespaceBucket(tx, ns)
		if err != nil {
			return err
		}
		src, err := getImageRecord(nsb, ns, from)
		if err != nil {
			return err
		}
		// link(2) answers EEXIST for any existing name, a directory too.
		if isImage(nsb, to) || isDir(nsb, to) {
			return errors.WithMessagef(ErrExists, "image ref %q already exists in namespace %q", shorten(to), ns)
		}
		if err := checkRefPlacement(nsb, ns, to); err != nil {
			return err
		}
		t := now()
		rec := imageRecord{createdAt: t, updatedAt: t, target: src.target}
		if rec.id, err = nextID(tx); err != nil {
			return err
		}
		data, err := nsSub(nsb, bucketImageData).CreateBucket(encodeUint64(rec.id))
		if err != nil {
			return err
		}
		// Looked up after its sibling was created, never held across that.
		srcData, err := imageData(nsb, src.id)
		if err != nil {
			return err
		}
		if err := copyBucket(data, srcData); err != nil {
			return err
		}
		if err := indexMissing(tx, ns, rec.id, missingSet(data)); err != nil {
			return err
		}
		if err := imageEntryAdding(nsb, to, t); err != nil {
			return err
		}
		if err := nsSub(nsb, bucketImages).Put([]byte(to), rec.encode()); err != nil {
			return err
		}
		// The new image claims what from claims; ns holds all of it
		// already, with its recorded size.
		for _, d := range claimSet(data) {
			held := heldBlob(nsb, d)
			if held == nil {
				return errors.WithMessagef(errCorrupt, "image %q of namespace %q claims blob %s, which the namespace does not hold", shorten(from), ns, d)
			}
			if err := claim(tx, nsb, ns, d, getInt64(held, keySize), t); err != nil {
				return err
			}
		}
		img = toImage(nsb, ns, to, rec, true)
		return nil
	})
	return img, err
}
