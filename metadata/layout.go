package metadata

import (
	"bytes"
	"encoding/json"
	"sort"

	"github.com/nsfs/nsfs/imagegraph"
	"github.com/nsfs/nsfs/names"
	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/pkg/errors"
	bolt "go.etcd.io/bbolt"
)

// Every namespace is an OCI image layout: its root holds oci-layout and
// index.json beside blobs/sha256/. index.json is not stored: it is made
// from the images of the namespace, in one snapshot, at each read; a
// write of it becomes the namespace's set of refs, in one transaction.

// OCILayout is the bytes of every namespace's oci-layout file.
var OCILayout = []byte(`{"imageLayoutVersion":"` + ocispec.ImageLayoutVersion + `"}`)

// CheckOCILayout accepts a write of oci-layout that keeps its version
// (tools write it whenever they open a layout): ErrInvalidArgument for
// anything else.
func CheckOCILayout(data []byte) error {
	var layout ocispec.ImageLayout
	if err := json.Unmarshal(data, &layout); err != nil || layout.Version != ocispec.ImageLayoutVersion {
		return errors.WithMessagef(ErrInvalidArgument, "oci-layout is %s; it cannot become %.64q", OCILayout, data)
	}
	return nil
}

// CheckOCILayoutPrefix refuses the first bytes of a write of oci-layout
// once they can no longer become an accepted one (CheckOCILayout): a
// whole JSON document of another version, or more bytes than any
// layout file has. A prefix that is not complete JSON yet passes.
func CheckOCILayoutPrefix(data []byte) error {
	if len(data) > 1024 || json.Valid(data) {
		return CheckOCILayout(data)
	}
	return nil
}

// AnnotationContainerdName is the annotation containerd's exporter puts
// the image's full name in; org.opencontainers.image.ref.name holds the
// ref too, so that `skopeo inspect oci:DIR:REF` finds the image by ref.
const AnnotationContainerdName = "io.containerd.image.name"

// LayoutStore is the namespace as an OCI image layout: `cat index.json`
// reaches Index, a write of index.json (tools write it whole, or rename a
// temporary file onto it) PutIndex.
type LayoutStore interface {
	// Index is index.json: every image of the namespace, sorted by ref,
	// as a descriptor of its target annotated with the ref, all read in
	// one snapshot. ErrNotFound when the namespace does not exist.
	Index(ns string) ([]byte, error)
	// IndexAndTimes is Index with index.json's times (as DirTimes gives
	// them for FileLayoutIndex), from the same snapshot.
	IndexAndTimes(ns string) ([]byte, Times, error)
	// PutIndex makes the namespace's refs those index data names: refs
	// new or pointing elsewhere are created or replaced, refs absent from
	// data are removed, refs unchanged are left alone, in one transaction.
	//
	// base, if not nil, is the index.json the writer read before (Index's
	// bytes): the write then changes exactly what the writer changed from
	// base, whatever changed meanwhile — a ref data names as base did is
	// left as it is now, a ref base had and data lacks is removed, and a
	// ref neither names (made since the writer read) stays. A tool that
	// reads index.json, pulls for a minute and writes it back so loses
	// no ref made by others in that minute.
	// The ref of a descriptor is its org.opencontainers.image.ref.name,
	// else its io.containerd.image.name; a descriptor with neither is
	// skipped (an untagged manifest of the layout, which the namespace
	// holds as a blob). ErrInvalidArgument when data is not an index,
	// a ref is invalid or named twice with different targets, or a
	// target's blob does not match its descriptor; nothing changes then.
	//
	// A ref whose target the namespace cannot see is skipped (returned in
	// skipped) and keeps what it had: no image can be made of bytes that
	// are not there, and a restore (cp -a of a namespace) may write
	// index.json before the blobs and images it names, which then make
	// the same refs. nsID, if not zero, must be the ID of namespace ns
	// (ErrNotFound otherwise), so that a writer of a deleted namespace's
	// index.json never rewrites a new namespace of the same name.
	//
	// changed lists the refs it made, retargeted or removed, so that a
	// caller can tell a cache about names the new index no longer has.
	PutIndex(ns string, nsID uint64, base, data []byte) (skipped, changed []string, err error)
}

// Layout is the store's LayoutStore.
func (db *DB) Layout() LayoutStore { return layoutStore{db} }

type layoutStore struct{ *DB }

// layoutEntry is an image as index.json names it.
type layoutEntry struct {
	ref    string
	target ocispec.Descriptor
}

func (db layoutStore) Index(ns string) ([]byte, error) {
	entries, _, err := db.entries(ns)
	if err != nil {
		return nil, err
	}
	return encodeLayoutIndex(entries), nil
}

// IndexAndTimes is Index with index.json's times (DirTimes of
// FileLayoutIndex), read in the same pass over the images: a stat of
// index.json needs both.
func (db layoutStore) IndexAndTimes(ns string) ([]byte, Times, error) {
	entries, t, err := db.entries(ns)
	if err != nil {
		return nil, Times{}, err
	}
	return encodeLayoutIndex(entries), t, nil
}

// entries are the refs of namespace ns with their targets, in ref order,
// and index.json's times, from one snapshot.
func (db layoutStore) entries(ns string) ([]layoutEntry, Times, error) {
	var entries []layoutEntry
	var t Times
	err := db.bolt.View(func(tx *bolt.Tx) error {
		nsb, err := namespaceBucket(tx, ns)
		if err != nil {
			return err
		}
		images, err := subBucket(nsData(nsb), bucketImages)
		if err != nil {
			return err
		}
		t = ownDirTimes(nsb, FileLayoutIndex)
		return images.ForEach(func(k, v []byte) error {
			rec, err := decodeImageRecord(v)
			if err != nil {
				return errors.WithMessagef(err, "image %q in namespace %q", k, ns)
			}
			entries = append(entries, layoutEntry{ref: string(k), target: rec.target})
			t = t.orLater(rec.times())
			return nil
		})
	})
	return entries, t, err
}

// encodeLayoutIndex writes index.json as containerd's exporter does: an
// OCI index whose manifests are the images' targets, each annotated with
// its name.
func encodeLayoutIndex(entries []layoutEntry) []byte {
	idx := ocispec.Index{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageIndex,
		Manifests: make([]ocispec.Descriptor, 0, len(entries)),
	}
	for _, e := range entries {
		d := e.target
		d.Annotations = map[string]string{
			AnnotationContainerdName:  e.ref,
			ocispec.AnnotationRefName: e.ref,
		}
		idx.Manifests = append(idx.Manifests, d)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(idx) // cannot fail: strings and numbers only
	return buf.Bytes()
}

// layoutWrite is one ref index.json sets, read and parsed before the
// transaction.
type layoutWrite struct {
	ref      string
	target   ocispec.Descriptor
	doc      imagegraph.Document
	children map[digest.Digest]imagegraph.Document
}

// UnnamedRefPrefix begins the ref of an image that index.json lists
// without a name: "@sha256:<hex>".
const UnnamedRefPrefix = "@"

// ParseLayoutIndex reads the refs an index.json names, each with its
// target's descriptor; see LayoutStore.PutIndex for the rules.
func ParseLayoutIndex(data []byte) (map[string]ocispec.Descriptor, error) {
	if len(data) > MaxManifestSize {
		return nil, errors.WithMessagef(ErrTooLarge, "index.json is %d bytes, over the 4 MiB limit", len(data))
	}
	// index.json is an index like any other; its names are its
	// children's annotations.
	doc, err := imagegraph.Parse(data)
	if err != nil {
		if emptyLayoutIndex(data) {
			return map[string]ocispec.Descriptor{}, nil
		}
		return nil, errors.WithMessagef(ErrInvalidArgument, "index.json: %v", err)
	}
	if !doc.IsIndex() {
		return nil, errors.WithMessagef(ErrInvalidArgument, "index.json is a %s, not an image index", doc.MediaType)
	}
	refs := map[string]ocispec.Descriptor{}
	for i, d := range doc.Children {
		ref := d.Annotations[ocispec.AnnotationRefName]
		if ref == "" {
			ref = d.Annotations[AnnotationContainerdName]
		}
		if ref == "" {
			// No name (crane pull --format=oci writes none): the image
			// is named by its digest, as ctr import --digests names
			// unnamed images, so that what the tool wrote is an image.
			ref = UnnamedRefPrefix + d.Digest.String()
		}
		if err := names.ValidateRef(ref); err != nil {
			return nil, errors.WithMessagef(err, "index.json: manifests[%d]", i)
		}
		target := ocispec.Descriptor{MediaType: d.MediaType, Digest: d.Digest, Size: d.Size}
		if prev, ok := refs[ref]; ok && prev.Digest != target.Digest {
			return nil, errors.WithMessagef(ErrInvalidArgument, "index.json names ref %q twice, as %s and %s", shorten(ref), prev.Digest, target.Digest)
		}
		refs[ref] = target
	}
	return refs, nil
}

// emptyLayoutIndex says whether data is an index.json of no images that
// the strict parser refuses for it: "manifests": null, as Go tools write
// a nil list.
func emptyLayoutIndex(data []byte) bool {
	var idx struct {
		SchemaVersion int             `json:"schemaVersion"`
		Manifests     json.RawMessage `json:"manifests"`
	}
	return json.Unmarshal(data, &idx) == nil && idx.SchemaVersion == 2 && string(idx.Manifests) == "null"
}

func (db layoutStore) PutIndex(ns string, nsID uint64, base, data []byte) (skipped, changed []string, err error) {
	refs, err := ParseLayoutIndex(data)
	if err != nil {
		return nil, nil, err
	}
	var baseRefs map[string]ocispec.Descriptor
	if base != nil {
		// Our own bytes: a base that does not parse is no base.
		baseRefs, _ = ParseLayoutIndex(base)
	}
	// unchangedByWriter: data names ref as the writer read it.
	unchangedByWriter := func(ref string, target ocispec.Descriptor) bool {
		old, ok := baseRefs[ref]
		return ok && old.Digest == target.Digest
	}
	// removedByWriter: ref, which data does not name, was there when the
	// writer read (or the writer read nothing: then every ref was).
	removedByWriter := func(ref string) bool {
		if baseRefs == nil {
			return true
		}
		_, ok := baseRefs[ref]
		return ok
	}
	// Disk I/O before the transaction: each new target's bytes, verified
	// against its descriptor, parsed, with the documents below an index.
	current, err := db.currentTargets(ns)
	if err != nil {
		return nil, nil, err
	}
	var writes []layoutWrite
	for ref, target := range refs {
		if old, ok := current[ref]; ok && old.Digest == target.Digest || unchangedByWriter(ref, target) {
			continue
		}
		w, err := db.readLayoutTarget(ns, ref, target)
		if IsNotFound(err) {
			skipped = append(skipped, ref)
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		writes = append(writes, w)
	}
	sort.Strings(skipped)
	sort.Slice(writes, func(i, j int) bool { return writes[i].ref < writes[j].ref })
	var removed []string
	for ref := range current {
		if _, ok := refs[ref]; !ok && removedByWriter(ref) {
			removed = append(removed, ref)
		}
	}
	sort.Strings(removed)
	if len(writes) == 0 && len(removed) == 0 {
		return skipped, nil, nil
	}
	for _, w := range writes {
		changed = append(changed, w.ref)
	}
	changed = append(changed, removed...)
	err = db.commitReleasing(ns, db.batch, func(tx *bolt.Tx, rel *releases) error {
		nsb, err := namespaceWithID(tx, ns, nsID)
		if err != nil {
			return err
		}
		// A blob that one image stops claiming must stay held while
		// another is to claim it (two refs may even swap targets): every
		// claimed blob a new target claims is pinned, one claim more,
		// for the transaction, and released at its end as any claim.
		pinned, err := db.pinLayoutClaims(tx, nsb, ns, writes)
		if err != nil {
			return err
		}
		for _, w := range writes {
			write := ImageWrite{Namespace: ns, NamespaceID: nsID, Ref: w.ref}
			if _, err := db.putImage(tx, write, w.target, w.doc, w.children, rel); err != nil {
				return errors.WithMessage(err, "index.json")
			}
		}
		for _, ref := range removed {
			if !isImage(nsb, ref) {
				continue
			}
			if err := deleteImage(tx, nsb, ns, ref, rel); err != nil {
				return err
			}
		}
		for _, d := range pinned {
			if err := unclaim(tx, nsb, d, rel); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return skipped, nil, err
	}
	return skipped, changed, nil
}

// pinLayoutClaims adds one claim to every blob the namespace holds for
// an image that the targets of writes will claim, and returns them.
func (db layoutStore) pinLayoutClaims(tx *bolt.Tx, nsb *bolt.Bucket, ns string, writes []layoutWrite) ([]digest.Digest, error) {
	var pinned []digest.Digest
	seen := map[digest.Digest]bool{}
	for _, w := range writes {
		claims, _, err := db.manifestClaims(tx, ns, w.ref, w.target, w.doc, w.children)
		if err != nil {
			return nil, errors.WithMessage(err, "index.json")
		}
		for d := range claims {
			if seen[d] {
				continue
			}
			seen[d] = true
			rec := heldBlob(nsb, d)
			if rec == nil {
				continue
			}
			n := getUint64(rec, keyImages)
			if n == 0 {
				continue // held by a write: no image release drops it
			}
			if err := putUint64(rec, keyImages, n+1); err != nil {
				return nil, err
			}
			pinned = append(pinned, d)
		}
	}
	sort.Slice(pinned, func(i, j int) bool { return pinned[i] < pinned[j] })
	return pinned, nil
}

// currentTargets maps each ref of the namespace to its target.
func (db layoutStore) currentTargets(ns string) (map[string]ocispec.Descriptor, error) {
	entries, _, err := db.entries(ns)
	if err != nil {
		return nil, err
	}
	current := make(map[string]ocispec.Descriptor, len(entries))
	for _, e := range entries {
		current[e.ref] = e.target
	}
	return current, nil
}

// readLayoutTarget reads and checks the manifest or index ref is to point
// at: its bytes must hash to, and be as long as, the descriptor says.
func (db layoutStore) readLayoutTarget(ns, ref string, target ocispec.Descriptor) (layoutWrite, error) {
	if err := names.ValidateDigest(target.Digest); err != nil {
		return layoutWrite{}, errors.WithMessagef(err, "index.json: ref %q", shorten(ref))
	}
	if _, err := db.Content().Stat(ns, target.Digest); err != nil {
		return layoutWrite{}, errors.WithMessagef(err, "index.json: ref %q: target %s", shorten(ref), target.Digest)
	}
	data, err := db.readSmallBlob(target.Digest)
	if err != nil {
		return layoutWrite{}, errors.WithMessagef(err, "index.json: ref %q: target %s", shorten(ref), target.Digest)
	}
	if digest.FromBytes(data) != target.Digest || int64(len(data)) != target.Size {
		return layoutWrite{}, errors.WithMessagef(ErrInvalidArgument, "index.json: ref %q: target %s is %d bytes of another digest, or not %d bytes", shorten(ref), target.Digest, len(data), target.Size)
	}
	doc, err := imagegraph.Parse(data)
	if err != nil {
		return layoutWrite{}, errors.WithMessagef(ErrInvalidArgument, "index.json: ref %q: target %s: %v", shorten(ref), target.Digest, err)
	}
	target.MediaType = doc.MediaType
	return layoutWrite{ref: ref, target: target, doc: doc, children: db.readIndexChildren(doc)}, nil
}

// Written reads back what a temporary ingest (TempWriter) holds, for a
// file that is no blob: an index.json written to a temporary name and
// renamed. At most MaxManifestSize bytes (ErrTooLarge).
func (w *BlobWriter) Written() ([]byte, error) {
	if size := w.Size(); size > MaxManifestSize {
		return nil, errors.WithMessagef(ErrTooLarge, "temporary file of %d bytes in namespace %q: index.json is at most 4 MiB", size, w.ns)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.Written(MaxManifestSize)
}
