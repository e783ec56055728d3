package fs

import (
	"context"
	"io"
	"sync"
	"syscall"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/nsfs/nsfs/metadata"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/pkg/errors"
)

// imageFile is an image: its bytes are the manifest or index its target
// names, so sha256sum prints the image digest; its labels are user.*
// xattrs. Its handles are in image_handles.go.
//
//	$ cp manifest.json images/redis          # create, write, close = Images().Put
//	$ sha256sum images/redis
//	4b7a…  images/redis
//	$ cp notes.txt images/redis
//	cp: failed to close 'images/redis': Invalid argument   # redis is unchanged
//	$ rm images/redis                         # Images().Delete, then its blobs go
//
// A write handle buffers the bytes in memory (at most
// metadata.MaxManifestSize) and commits them with Images().Put at fsync and at
// close when they changed since the last commit (created, truncated or
// written): `touch images/x` and `: > images/redis` fail at close with
// EINVAL (an empty file is not a manifest) and change nothing. A new image
// exists only for its writer until the first commit; when that fails, or
// the last handle goes without one, nothing is created and the kernel is
// told to forget the name. A failed commit keeps the buffer, so that a
// later close can still succeed: a shell running `cat m.json >
// images/redis` closes its copy of the descriptor (EINVAL, ignored) before
// cat writes, and cat's close creates the image. A new image's ID is
// reserved at create (metadata.ImageStore.ReserveID), so its inode number is its
// final one from the start, and the node stays the image's across its
// commits, renames and lookups.
//
// The node keeps its ref as a field, updated by Rename, and its life
// (imageLife), which Unlink ends (go-fuse hands back the same node for the same inode number, so
// the name it was found under is not the truth). Every commit names the
// image by ref and ID (metadata.ImageWrite), and metadata checks both in
// its transaction: a commit of an image that was removed, renamed away or
// replaced meanwhile is refused with ErrImageGone, and its bytes go
// nowhere, as they would on any filesystem.
type imageFile struct {
	gofs.Inode
	nodeBase
	ns nsRef
	id uint64 // the image's ID (reserved at create for a new one); the inode is recordIno(id)

	// nameMu is held across a change of the image's name in the store and
	// of ref (Rename), and across a commit (from reading ref to Images().Put's
	// return), so that a commit never names the image by a ref the store
	// has just changed; and by the pending-label methods, so that labels
	// set while a commit creates the image are not lost. Taken before mu.
	nameMu sync.Mutex

	mu         sync.Mutex
	life       imageLife
	budgetSlot int32        // its slot in the node budget, or noSlot (node_budget.go); under the budget's lock
	ref        string       // the image's ref; once removed, its last one (what a later commit names)
	writes     *imageWrites // while it is created or written; nil otherwise
}

// imageWrites is what an image node holds only while the image is being
// created or written. Most nodes (the kernel can hold one for each of
// 100,000 images listed with ls -l) are only looked up and read, and
// carry a nil pointer instead: a node is 224 bytes, not 320.
type imageWrites struct {
	created time.Time              // when its creation began
	labels  metadata.PendingLabels // labels set while being created, stored by the first commit
	writers map[*imageWriter]bool
	latest  *imageWriter // the writer that wrote last: Getattr shows its size
	// pendingMtime: a utimes while bytes were not committed, stored after
	// the commit (times.go)
	pendingMtime time.Time
}

// writesLocked is f.writes, made when first needed; under f.mu.
func (f *imageFile) writesLocked() *imageWrites {
	if f.writes == nil {
		f.writes = &imageWrites{}
	}
	return f.writes
}

// dropWritesLocked lets go of f.writes once nothing in it is needed: no
// writer, no pending creation, labels or times; under f.mu.
func (f *imageFile) dropWritesLocked() {
	w := f.writes
	if w != nil && len(w.writers) == 0 && w.pendingMtime.IsZero() && (f.life == stored || f.life == removed) {
		f.writes = nil
	}
}

// creationTime is when the image's creation began (zero for a stored one).
func (f *imageFile) creationTime() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.writes == nil {
		return time.Time{}
	}
	return f.writes.created
}

// storedLabels are the xattrs of an image the store has.
func (f *imageFile) storedLabels() *labelXattrs {
	return &labelXattrs{db: f.fsys.db, subject: f}
}

// imageLife is where an image node is in its life; only the methods of
// imageFile change it, under its mu.
//
//	         create            first commit
//	(none) ─────────▶ creating ────────────▶ stored ──────────▶ removed
//	                  │   ▲                       unlink, or
//	  failed commit,  │   │ open for writing      replaced by a rename
//	  last release    ▼   │
//	                abandoned  (creating, abandoned) ──────────▶ removedUnborn
//	                                             unlink, or replaced
type imageLife uint8

const (
	// stored: the store has the image under ref.
	stored imageLife = iota
	// creating: created by a writer and not committed yet, it exists for
	// its writers only (stat, setfattr, more writers, not a reader), and
	// its labels are kept in the node until the first commit stores them.
	creating
	// abandoned: its creation failed, or its last writer left without a
	// commit; the kernel is told to forget it, and an open for writing of
	// the name it may still hold begins the creation again. A later close
	// of a writer whose commit failed can still create it.
	abandoned
	// removed: unlinked or replaced after a commit; what its handles
	// still write goes nowhere (metadata refuses the commit, by ID).
	removed
	// removedUnborn: unlinked or replaced before its first commit; it
	// never was in the store, and no commit puts it there.
	removedUnborn
)

// unborn says the image was never committed: a commit of it (unless
// removed) creates it.
func (l imageLife) unborn() bool { return l == creating || l == abandoned || l == removedUnborn }

// isRemoved says the image is gone from its name: it has no ref.
func (l imageLife) isRemoved() bool { return l == removed || l == removedUnborn }

var (
	_ = (gofs.InodeEmbedder)((*imageFile)(nil))
	_ = (gofs.NodeStatfser)((*imageFile)(nil))
	_ = (gofs.NodeGetattrer)((*imageFile)(nil))
	_ = (gofs.NodeSetattrer)((*imageFile)(nil))
	_ = (gofs.NodeGetxattrer)((*imageFile)(nil))
	_ = (gofs.NodeSetxattrer)((*imageFile)(nil))
	_ = (gofs.NodeRemovexattrer)((*imageFile)(nil))
	_ = (gofs.NodeListxattrer)((*imageFile)(nil))
	_ = (gofs.NodeOpener)((*imageFile)(nil))
)

func newImageFile(fsys *filesystem, ns nsRef, ref string, id uint64, pending bool) *imageFile {
	// writers is made by the first open for writing: most nodes are only
	// ever looked up, and 100,000 of them should not carry empty maps.
	f := &imageFile{nodeBase: nodeBase{fsys}, ns: ns, id: id, ref: ref, budgetSlot: noSlot}
	if pending {
		f.life, f.writes = creating, &imageWrites{created: time.Now()}
	}
	return f
}

// currentRef is the image's ref, "" once it is removed.
func (f *imageFile) currentRef() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.currentRefLocked()
}

func (f *imageFile) currentRefLocked() string {
	if f.life.isRemoved() {
		return ""
	}
	return f.ref
}

func (f *imageFile) setRef(ref string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ref = ref
}

// detach records that the image the node named is gone (unlinked, or
// replaced by a rename): what its open handles write goes nowhere.
func (f *imageFile) detach() {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch f.life {
	case stored:
		f.life = removed
	case creating, abandoned:
		f.life = removedUnborn
	}
	if f.writes != nil {
		f.writes.labels = metadata.PendingLabels{}
	}
}

// isPending says the image is being created.
func (f *imageFile) isPending() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.life == creating
}

// pendingNode answers a lookup of an image still being created.
func (f *imageFile) pendingNode(ctx context.Context, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	var attr fuse.AttrOut
	if errno := f.Getattr(ctx, nil, &attr); errno != 0 {
		return nil, errno
	}
	out.Attr = attr.Attr
	cacheName(out)
	return f.EmbeddedInode(), 0
}

func (f *imageFile) display() string {
	return imagePath(f.ns, f.currentRef())
}

func (f *imageFile) labelObject() (metadata.Object, string, syscall.Errno) {
	if errno := f.fsys.enter(&f.ns); errno != 0 {
		return metadata.Object{}, "", errno
	}
	ref := f.currentRef()
	if ref == "" {
		return metadata.Object{}, "", syscall.ENOENT
	}
	return metadata.Object{Namespace: f.ns.name, Image: ref}, imagePath(f.ns, ref), 0
}

// imageState is what Getattr and Open need to know, read under one lock.
type imageState struct {
	ref     string // "" once removed
	life    imageLife
	created time.Time
	latest  *imageWriter
}

func (f *imageFile) state() imageState {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := imageState{ref: f.currentRefLocked(), life: f.life}
	if f.writes != nil {
		s.created, s.latest = f.writes.created, f.writes.latest
	}
	return s
}

// Getattr shows the buffered bytes while a handle holds uncommitted ones
// (a new image, or one being rewritten), else the image's target.
func (f *imageFile) Getattr(ctx context.Context, fh gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	if errno := f.fsys.enter(&f.ns); errno != 0 {
		return errno
	}
	s := f.state()
	if s.life != stored && s.life != creating {
		return syscall.ENOENT
	}
	w, _ := fh.(*imageWriter)
	if w == nil || !w.isDirty() {
		w = s.latest
	}
	if w != nil && (s.life == creating || w.isDirty()) {
		size, mtime := w.sizeAndTime()
		f.fsys.fillFile(&out.Attr, f.ns, imagePerm, size, mtime, mtime)
		return 0
	}
	if s.life == creating {
		f.fsys.fillFile(&out.Attr, f.ns, imagePerm, 0, s.created, s.created)
		return 0
	}
	img, err := f.fsys.db.Images().Stat(f.ns.name, s.ref)
	if err != nil {
		return lookupErrno("getattr "+imagePath(f.ns, s.ref), err)
	}
	fillImage(f.fsys, f.ns, &out.Attr, &img)
	return 0
}

// Setattr: truncate applies to the open write handle (or, with none, is a
// rewrite of the image); a utimes mtime is stored (times.go); mode and
// owner are accepted and not stored (see the comment above nodeBase).
func (f *imageFile) Setattr(ctx context.Context, fh gofs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	if errno := f.fsys.enter(&f.ns); errno != 0 {
		return errno
	}
	if size, ok := in.GetSize(); ok {
		w, _ := fh.(*imageWriter)
		if w == nil {
			w = f.anyWriter()
		}
		var errno syscall.Errno
		if w != nil {
			errno = w.truncate(int64(size))
		} else {
			errno = f.truncateCommitted(int64(size))
		}
		if errno != 0 {
			return errno
		}
	}
	if mtime, ok := in.GetMTime(); ok {
		if errno := f.setModified(mtime); errno != 0 {
			return errno
		}
	}
	return f.Getattr(ctx, fh, out)
}

func (f *imageFile) anyWriter() *imageWriter {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.writes == nil {
		return nil
	}
	if f.writes.latest != nil {
		return f.writes.latest
	}
	for w := range f.writes.writers {
		return w
	}
	return nil
}

// truncateCommitted is truncate(2) with no handle open: the truncated
// bytes become the image, if they still are a manifest.
func (f *imageFile) truncateCommitted(size int64) syscall.Errno {
	s := f.state()
	if s.life != stored {
		return syscall.ENOENT
	}
	data, errno := f.committedBytes(s.ref, nil)
	if errno != 0 {
		return errno
	}
	if int64(len(data)) == size {
		return 0
	}
	if size > metadata.MaxManifestSize {
		return f.tooLarge("truncate", size)
	}
	data = resize(data, size)
	f.nameMu.Lock()
	_, err := f.fsys.db.Images().Put(metadata.ImageWrite{Namespace: f.ns.name, NamespaceID: f.ns.id, Ref: s.ref, Manifest: data, ID: f.id})
	f.nameMu.Unlock()
	if err != nil {
		return toErrno("commit "+imagePath(f.ns, s.ref)+" (truncate)", err)
	}
	return 0
}

func (f *imageFile) tooLarge(op string, size int64) syscall.Errno {
	return toErrno(op+" "+f.display(), errors.Wrapf(metadata.ErrTooLarge,
		"a manifest is at most %d bytes, not %d", metadata.MaxManifestSize, size))
}

func resize(data []byte, size int64) []byte {
	if int64(len(data)) >= size {
		return data[:size]
	}
	return append(data, make([]byte, size-int64(len(data)))...)
}

// committedBytes reads the manifest of image ref. The bytes are counted
// against slot, if any, before they are read (ENOMEM over the caller's
// limit).
func (f *imageFile) committedBytes(ref string, slot *handleSlot) ([]byte, syscall.Errno) {
	img, err := f.fsys.db.Images().Stat(f.ns.name, ref)
	if err != nil {
		return nil, lookupErrno("open "+imagePath(f.ns, ref), err)
	}
	size := img.Target.Size
	if size < 0 || size > metadata.MaxManifestSize {
		return nil, toErrno("open "+imagePath(f.ns, ref), errors.Errorf("manifest %s is %d bytes, over the limit of %d", img.Target.Digest, size, metadata.MaxManifestSize))
	}
	if slot != nil {
		if errno := slot.setBuffered(size, "open "+imagePath(f.ns, ref)); errno != 0 {
			return nil, errno
		}
	}
	r, err := f.fsys.db.Content().Open(f.ns.name, img.Target.Digest)
	if err != nil {
		return nil, toErrno("open "+imagePath(f.ns, ref), err)
	}
	defer r.Close()
	data := make([]byte, size)
	if _, err := io.ReadFull(r, data); err != nil {
		return nil, toErrno("read "+imagePath(f.ns, ref), err)
	}
	return data, 0
}

// Open for reading notes which manifest the image is (its target's digest
// and size), and each read reads that blob's file; for writing it starts a
// buffer, with the current bytes unless O_TRUNC; O_APPEND is EINVAL (a
// manifest is written whole).
//
// Reads bypass the kernel's page cache (direct I/O): the kernel would cut
// them at the size it last heard of, which a writer of the same image
// changes at will (O_TRUNC makes it 0), and the reader would get an empty
// or truncated manifest. Direct, a reader gets all of what it opened.
func (f *imageFile) Open(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	if errno := f.fsys.enter(&f.ns); errno != 0 {
		return nil, 0, errno
	}
	if flags&syscall.O_ACCMODE == syscall.O_RDONLY {
		target, errno := f.committedTarget()
		if errno != 0 {
			return nil, 0, errno
		}
		return &imageReader{file: f, digest: target.Digest, size: target.Size}, fuse.FOPEN_DIRECT_IO, 0
	}
	if flags&syscall.O_APPEND != 0 {
		return nil, 0, toErrno("open "+f.display(), metadata.ImageAppend(f.ns.name, f.currentRef()))
	}
	f.mu.Lock()
	recreated := f.life == abandoned
	if recreated {
		// The kernel may still hold the name of a creation that failed:
		// opening it for writing begins the creation again.
		f.life = creating
		f.writesLocked().created = time.Now()
	}
	ref, pending := f.currentRefLocked(), f.life == creating
	var latest *imageWriter
	if f.writes != nil {
		latest = f.writes.latest
	}
	f.mu.Unlock()
	if ref == "" {
		return nil, 0, syscall.ENOENT
	}
	slot, errno := f.fsys.handles.acquire(ctx, "open "+imagePath(f.ns, ref))
	if errno != 0 {
		if recreated {
			// Not begun after all: the failed creation stays abandoned.
			f.mu.Lock()
			if f.life == creating {
				f.life = abandoned
			}
			f.mu.Unlock()
		}
		return nil, 0, errno
	}
	defer slot.releaseIfPanicking()
	truncated := flags&syscall.O_TRUNC != 0
	var initial []byte
	switch {
	case truncated || recreated:
	case pending && latest != nil:
		initial, _ = latest.snapshot()
	case !pending:
		initial, errno = f.committedBytes(ref, slot)
	}
	if errno == 0 {
		errno = slot.setBuffered(int64(cap(initial)), "open "+imagePath(f.ns, ref))
	}
	if errno != 0 {
		slot.release()
		return nil, 0, errno
	}
	return f.newWriter(ctx, slot, initial, truncated || recreated), 0, 0
}

// committedTarget is what a reader sees: the committed manifest. An image
// still being created has none yet, and its writer's buffer is half a
// manifest: like a blob being ingested, it is there by name (stat,
// setfattr, more writers) but cannot be read until its first commit.
func (f *imageFile) committedTarget() (ocispec.Descriptor, syscall.Errno) {
	s := f.state()
	if s.life != stored {
		return ocispec.Descriptor{}, syscall.ENOENT
	}
	img, err := f.fsys.db.Images().Stat(f.ns.name, s.ref)
	if err != nil {
		return ocispec.Descriptor{}, lookupErrno("open "+imagePath(f.ns, s.ref), err)
	}
	return img.Target, 0
}

// newWriter starts a write handle with initial bytes; changed says they
// are not the committed image's (a new or truncated file), so that close
// commits them even if nothing is written. slot is the handle's share of
// the caller's limits, holding cap(initial) bytes.
func (f *imageFile) newWriter(ctx context.Context, slot *handleSlot, initial []byte, changed bool) *imageWriter {
	w := &imageWriter{file: f, slot: slot, owner: processOf(ctx), buf: initial, dirty: changed, written: changed, mtime: time.Now()}
	f.mu.Lock()
	writes := f.writesLocked()
	if writes.writers == nil {
		writes.writers = map[*imageWriter]bool{}
	}
	writes.writers[w] = true
	if changed {
		writes.latest = w
	}
	f.mu.Unlock()
	return w
}

func (f *imageFile) wrote(w *imageWriter) {
	f.mu.Lock()
	f.writesLocked().latest = w
	f.mu.Unlock()
}

// committed records a successful commit by a handle: the image exists
// now (its labels went into the commit's transaction).
func (f *imageFile) committed() {
	f.mu.Lock()
	switch f.life {
	case creating, abandoned:
		f.life = stored
	case removedUnborn:
		f.life = removed // removed while the commit stored it
	}
	if f.writes != nil {
		f.writes.labels = metadata.PendingLabels{}
	}
	f.mu.Unlock()
}

// commitFailed records a failed commit: a creation that fails creates
// nothing, and the kernel forgets the name (before close returns: see
// filesystem.notify).
func (f *imageFile) commitFailed(now bool) {
	f.mu.Lock()
	forget := f.life == creating || f.life == removedUnborn
	if f.life == creating {
		f.life = abandoned
	}
	f.mu.Unlock()
	if forget {
		f.fsys.notify(now, func() { forgetName(f.EmbeddedInode()) })
	} else {
		// The kernel believes the size it wrote; the image is unchanged.
		f.fsys.notify(now, func() { f.NotifyContent(0, 0) })
	}
}

// released records that handle w is gone.
func (f *imageFile) released(w *imageWriter, dirty bool) {
	f.mu.Lock()
	writers := 0
	if f.writes != nil {
		delete(f.writes.writers, w)
		if f.writes.latest == w {
			f.writes.latest = nil
		}
		writers = len(f.writes.writers)
	}
	left := (f.life == creating || f.life == removedUnborn) && writers == 0
	if left && f.life == creating {
		f.life = abandoned
	}
	f.dropWritesLocked()
	f.mu.Unlock()
	switch {
	case left:
		f.fsys.inval.post(func() { forgetName(f.EmbeddedInode()) })
	case dirty:
		f.fsys.inval.post(func() { f.NotifyContent(0, 0) })
	}
}

// The xattr methods of an image still being created keep its labels in
// memory, so that cp -a and mv across namespaces (which set xattrs before
// they close) keep them; they are written at the commit.

// withPendingLabels runs fn on the labels of an image still being created
// (o names it in messages), under the node's lock (a commit may end the
// creation at any moment); false when the image is not being created,
// and when the gate refuses the node (labelXattrs, which the caller falls
// back to, passes it again and answers its errno).
// The rules are metadata's (PendingLabels).
func (f *imageFile) withPendingLabels(fn func(o metadata.Object, labels *metadata.PendingLabels)) bool {
	if f.fsys.enter(&f.ns) != 0 {
		return false
	}
	f.nameMu.Lock()
	defer f.nameMu.Unlock()
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.life != creating && f.life != removedUnborn {
		return false
	}
	fn(metadata.Object{Namespace: f.ns.name, Image: f.ref}, &f.writesLocked().labels)
	return true
}

func (f *imageFile) Getxattr(ctx context.Context, attr string, dest []byte) (uint32, syscall.Errno) {
	key, errno := labelKey("getxattr", attr, notUserXattr)
	if errno != 0 {
		return 0, errno
	}
	var value string
	var err error
	if !f.withPendingLabels(func(o metadata.Object, labels *metadata.PendingLabels) { value, err = labels.Label(o, key) }) {
		return f.storedLabels().Getxattr(ctx, attr, dest)
	}
	if err != nil {
		return 0, toErrno("getxattr "+f.display()+" "+attr, err)
	}
	return getValue(value, dest)
}

func (f *imageFile) Setxattr(ctx context.Context, attr string, data []byte, flags uint32) syscall.Errno {
	key, cond, errno := parseSetxattr(attr, data, flags)
	if errno != 0 {
		return errno
	}
	var err error
	if !f.withPendingLabels(func(o metadata.Object, labels *metadata.PendingLabels) {
		// string(data) copies: go-fuse reuses the buffer.
		err = labels.Set(o, key, string(data), cond.Check)
	}) {
		return f.storedLabels().Setxattr(ctx, attr, data, flags)
	}
	if err != nil {
		return toErrno("setxattr "+f.display()+" "+attr, err)
	}
	return 0
}

func (f *imageFile) Removexattr(ctx context.Context, attr string) syscall.Errno {
	key, errno := labelKey("removexattr", attr, notUserXattr)
	if errno != 0 {
		return errno
	}
	var err error
	if !f.withPendingLabels(func(o metadata.Object, labels *metadata.PendingLabels) { err = labels.Remove(o, key) }) {
		return f.storedLabels().Removexattr(ctx, attr)
	}
	if err != nil {
		return toErrno("removexattr "+f.display()+" "+attr, err)
	}
	return 0
}

func (f *imageFile) Listxattr(ctx context.Context, dest []byte) (uint32, syscall.Errno) {
	var labels map[string]string
	if !f.withPendingLabels(func(_ metadata.Object, pending *metadata.PendingLabels) { labels = pending.Labels() }) {
		return f.storedLabels().Listxattr(ctx, dest)
	}
	return listLabels(labels, dest)
}
