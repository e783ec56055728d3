package fs

import (
	"context"
	"os"
	"sync"
	"syscall"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/nsfs/nsfs/metadata"
	"github.com/opencontainers/go-digest"
)

// blobsDir is blobs/ of a namespace: it holds sha256/ only.
//
//	$ ls blobs
//	sha256
//	$ mkdir blobs/sha512
//	mkdir: cannot create directory 'blobs/sha512': Operation not permitted
type blobsDir struct {
	fixedDir
}

// fixedDir is what blobs/ and blobs/sha256 share: they exist as long as
// their namespace does, have the mount's times, and carry no labels.
type fixedDir struct {
	gofs.Inode
	dirBase
	noXattrs
	ns nsRef
}

func (d *fixedDir) Getattr(ctx context.Context, f gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	if errno := d.fsys.enter(&d.ns); errno != 0 {
		return errno
	}
	d.fsys.fillDir(&out.Attr, d.fsys.started, d.fsys.started)
	return 0
}

func (d *fixedDir) Setattr(ctx context.Context, f gofs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	return setattrDir(in, out, d)
}

var (
	_ = (gofs.InodeEmbedder)((*blobsDir)(nil))
	_ = (gofs.NodeLookuper)((*blobsDir)(nil))
	_ = (gofs.NodeReaddirer)((*blobsDir)(nil))
	_ = (gofs.NodeGetattrer)((*blobsDir)(nil))
	_ = (gofs.NodeSetattrer)((*blobsDir)(nil))
	_ = (gofs.NodeMkdirer)((*blobsDir)(nil))
	_ = (gofs.NodeRmdirer)((*blobsDir)(nil))
)

func (d *blobsDir) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	if errno := d.fsys.enter(&d.ns, name); errno != 0 {
		return nil, errno
	}
	if name != sha256Name {
		return nil, syscall.ENOENT
	}
	d.fsys.fillDir(&out.Attr, d.fsys.started, d.fsys.started)
	cacheName(out)
	ino := d.fsys.inodes.dir(d.ns.id, sha256Key)
	return d.NewInode(ctx, &sha256Dir{fixedDir{dirBase: d.dirBase, ns: d.ns}}, dirAttr(ino)), 0
}

func (d *blobsDir) Readdir(ctx context.Context) (gofs.DirStream, syscall.Errno) {
	if errno := d.fsys.enter(&d.ns); errno != 0 {
		return nil, errno
	}
	entries := dirEntries(d.EmbeddedInode(), 1)
	entries = append(entries, fuse.DirEntry{Name: sha256Name, Mode: syscall.S_IFDIR, Ino: d.fsys.inodes.dir(d.ns.id, sha256Key)})
	return gofs.NewListDirStream(entries), 0
}

// Mkdir: sha256/ always exists; no other algorithm is stored.
func (d *blobsDir) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	if name == sha256Name {
		return nil, syscall.EEXIST
	}
	return nil, d.refuse(name)
}

// Rmdir of sha256/ succeeds once the namespace holds no blob; it stays.
func (d *blobsDir) Rmdir(ctx context.Context, name string) syscall.Errno {
	if errno := d.fsys.enter(&d.ns); errno != 0 {
		return errno
	}
	if name == sha256Name {
		return d.fsys.rmdirBlobs(d.ns, "ns/"+d.ns.name+"/blobs/sha256", sha256Key)
	}
	return d.refuse(name)
}

// sha256Dir is blobs/sha256: it lists the blobs the namespace holds, and
// looks up every blob it can see (all of the store under the shared
// policy). Creating <hex> ingests a blob.
//
//	$ cp layer.tar blobs/sha256/$(sha256sum < layer.tar | cut -d' ' -f1)
//	$ cp other.tar blobs/sha256/0000…0000
//	cp: failed to close 'blobs/sha256/0000…0000': Bad message
//	$ rm blobs/sha256/4b7a…                   # EBUSY while an image uses it
type sha256Dir struct {
	fixedDir
}

var (
	_ = (gofs.InodeEmbedder)((*sha256Dir)(nil))
	_ = (gofs.NodeLookuper)((*sha256Dir)(nil))
	_ = (gofs.NodeReaddirer)((*sha256Dir)(nil))
	_ = (gofs.NodeGetattrer)((*sha256Dir)(nil))
	_ = (gofs.NodeSetattrer)((*sha256Dir)(nil))
	_ = (gofs.NodeCreater)((*sha256Dir)(nil))
	_ = (gofs.NodeUnlinker)((*sha256Dir)(nil))
	_ = (gofs.NodeRmdirer)((*sha256Dir)(nil))
)

// blobDigest is the digest a name in blobs/sha256 stands for.
func blobDigest(name string) digest.Digest {
	return digest.NewDigestFromEncoded(digest.SHA256, name)
}

func (d *sha256Dir) display(name string) string {
	return blobPath(d.ns, name)
}

func blobPath(ns nsRef, hex string) string {
	return "ns/" + ns.name + "/blobs/sha256/" + hex
}

// blobNode returns the node of blob dg: the one the tree holds, if any.
func (d *sha256Dir) blobNode(ctx context.Context, name string, dg digest.Digest) *gofs.Inode {
	if ch := d.GetChild(name); ch != nil {
		if _, ok := ch.Operations().(*blobFile); ok {
			return ch
		}
	}
	return d.NewInode(ctx, newBlobFile(d.fsys, d.ns, dg), fileAttr(blobIno(d.ns.id, dg)))
}

func (d *sha256Dir) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	if errno := d.fsys.enter(&d.ns, name); errno != 0 {
		return nil, errno
	}
	dg := blobDigest(name)
	b, err := d.fsys.db.StatBlob(d.ns.name, dg)
	if err != nil {
		if child := d.ingestingChild(name); metadata.IsNotFound(err) && child != nil {
			// Being ingested: it is there for as long as its writer has it
			// open, also once the kernel's entry expired.
			var attr fuse.AttrOut
			if errno := child.Getattr(ctx, nil, &attr); errno != 0 {
				return nil, errno
			}
			out.Attr = attr.Attr
			return child.EmbeddedInode(), 0
		}
		return nil, lookupErrno("lookup "+d.display(name), err)
	}
	// No cacheName: a blob's name can go without a request through the
	// kernel (the last image that held it was removed in another
	// namespace, or garbage collection), so the kernel asks each time.
	// The alternative, telling it (NotifyEntry), waits for the
	// directory's lock in the kernel, and a daemon killed while it waits
	// can never exit.
	fillBlob(d.fsys, &out.Attr, &b)
	return d.blobNode(ctx, name, dg), 0
}

// ingestingChild is the node the tree holds under name if an ingest
// through it is under way.
func (d *sha256Dir) ingestingChild(name string) *blobFile {
	if ch := d.GetChild(name); ch != nil {
		if f, ok := ch.Operations().(*blobFile); ok && f.activeIngest() != nil {
			return f
		}
	}
	return nil
}

func fillBlob(fsys *filesystem, a *fuse.Attr, b *metadata.Blob) {
	fsys.fillFile(a, blobPerm, b.Size, b.CreatedAt, b.CreatedAt)
}

// Readdir lists the blobs the namespace holds (what rmdir counts).
func (d *sha256Dir) Readdir(ctx context.Context) (gofs.DirStream, syscall.Errno) {
	if errno := d.fsys.enter(&d.ns); errno != 0 {
		return nil, errno
	}
	list, err := d.fsys.db.ListBlobs(d.ns.name)
	if err != nil {
		return nil, toErrno("readdir ns/"+d.ns.name+"/blobs/sha256", err)
	}
	entries := dirEntries(d.EmbeddedInode(), len(list))
	for _, b := range list {
		entries = append(entries, fuse.DirEntry{Name: b.Digest.Encoded(), Mode: syscall.S_IFREG, Ino: blobIno(d.ns.id, b.Digest)})
	}
	return gofs.NewListDirStream(entries), 0
}

// Create starts an ingest of the blob the name is the digest of: EEXIST
// when the namespace can already see it (nothing to send), EINVAL for a
// name that is no sha256 digest. Without O_EXCL an existing blob is opened
// instead (for writing: EPERM, blobs are read-only).
func (d *sha256Dir) Create(ctx context.Context, name string, flags uint32, mode uint32, out *fuse.EntryOut) (*gofs.Inode, gofs.FileHandle, uint32, syscall.Errno) {
	if errno := d.fsys.enter(&d.ns, name); errno != 0 {
		return nil, nil, 0, errno
	}
	dg := blobDigest(name)
	slot, errno := d.fsys.handles.acquire(ctx, "create "+d.display(name))
	if errno != 0 {
		return nil, nil, 0, errno
	}
	defer slot.releaseIfPanicking()
	w, err := d.fsys.db.WriteBlob(d.ns.name, d.ns.id, dg)
	if err != nil {
		slot.release()
		if metadata.IsExists(err) && flags&syscall.O_EXCL == 0 {
			node, errno := d.Lookup(ctx, name, out)
			if errno != 0 {
				return nil, nil, 0, errno
			}
			fh, fuseFlags, errno := node.Operations().(*blobFile).Open(ctx, flags)
			if errno != 0 {
				return nil, nil, 0, errno
			}
			return node, fh, fuseFlags, 0
		}
		return nil, nil, 0, toErrno("create "+d.display(name), err)
	}
	node := d.blobNode(ctx, name, dg)
	ing := node.Operations().(*blobFile).startIngest(ctx, w, slot)
	d.fsys.fillFile(&out.Attr, blobPerm, 0, ing.started, ing.started)
	return node, ing, 0, 0
}

// Unlink makes the namespace drop the blob (EBUSY while one of its images
// uses it). Unlinking a blob still being written ends its ingest.
func (d *sha256Dir) Unlink(ctx context.Context, name string) syscall.Errno {
	if errno := d.fsys.enter(&d.ns, name); errno != 0 {
		return errno
	}
	var child *blobFile
	if ch := d.GetChild(name); ch != nil {
		child, _ = ch.Operations().(*blobFile)
	}
	dg := blobDigest(name)
	err := d.fsys.db.DeleteBlob(d.ns.name, dg)
	if err != nil {
		if metadata.IsNotFound(err) && child != nil && child.abortIngest() {
			return 0
		}
		return lookupErrno("rm "+d.display(name), err)
	}
	return 0
}

// Rmdir: everything in blobs/sha256 is a file.
func (d *sha256Dir) Rmdir(ctx context.Context, name string) syscall.Errno {
	if errno := d.fsys.enter(&d.ns, name); errno != 0 {
		return errno
	}
	if _, err := d.fsys.db.StatBlob(d.ns.name, blobDigest(name)); err == nil {
		return syscall.ENOTDIR
	}
	return syscall.ENOENT
}

// blobFile is a blob as the namespace sees it: read-only once committed;
// labels are per namespace. Its state comes from the store at each call
// (go-fuse hands back the same node for the same digest), except while an
// ingest through it is under way.
type blobFile struct {
	gofs.Inode
	nodeBase
	labelXattrs
	ns     nsRef
	digest digest.Digest

	mu     sync.Mutex
	ingest *blobIngest // the ingest under way through this node, if any
}

var (
	_ = (gofs.InodeEmbedder)((*blobFile)(nil))
	_ = (gofs.NodeGetattrer)((*blobFile)(nil))
	_ = (gofs.NodeSetattrer)((*blobFile)(nil))
	_ = (gofs.NodeOpener)((*blobFile)(nil))
	_ = (gofs.NodeGetxattrer)((*blobFile)(nil))
	_ = (gofs.NodeSetxattrer)((*blobFile)(nil))
	_ = (gofs.NodeRemovexattrer)((*blobFile)(nil))
	_ = (gofs.NodeListxattrer)((*blobFile)(nil))
)

func newBlobFile(fsys *filesystem, ns nsRef, dg digest.Digest) *blobFile {
	f := &blobFile{nodeBase: nodeBase{fsys}, ns: ns, digest: dg}
	f.labelXattrs = labelXattrs{db: fsys.db, subject: f}
	return f
}

func (f *blobFile) display() string { return blobPath(f.ns, f.digest.Encoded()) }

func (f *blobFile) labelObject() (metadata.Object, string, syscall.Errno) {
	if errno := f.fsys.enter(&f.ns); errno != 0 {
		return metadata.Object{}, "", errno
	}
	return metadata.Object{Namespace: f.ns.name, Blob: f.digest}, f.display(), 0
}

// activeIngest is the ingest under way through this node, if any.
func (f *blobFile) activeIngest() *blobIngest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.ingest
}

func (f *blobFile) Getattr(ctx context.Context, fh gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	if errno := f.fsys.enter(&f.ns); errno != 0 {
		return errno
	}
	if ing := f.activeIngest(); ing != nil {
		f.fsys.fillFile(&out.Attr, blobPerm, ing.w.Size(), ing.started, ing.started)
		return 0
	}
	b, err := f.fsys.db.StatBlob(f.ns.name, f.digest)
	if err != nil {
		return lookupErrno("getattr "+f.display(), err)
	}
	fillBlob(f.fsys, &out.Attr, &b)
	return 0
}

// Setattr: an ingest can only be "truncated" to what it has (it is
// written sequentially, EINVAL otherwise); a committed blob not at all
// (EPERM). Times, mode and owner are accepted and not stored.
func (f *blobFile) Setattr(ctx context.Context, fh gofs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	if errno := f.fsys.enter(&f.ns); errno != 0 {
		return errno
	}
	if size, ok := in.GetSize(); ok {
		ing, _ := fh.(*blobIngest)
		if ing == nil {
			ing = f.activeIngest()
		}
		if ing != nil {
			if int64(size) != ing.w.Size() {
				return syscall.EINVAL
			}
		} else if b, err := f.fsys.db.StatBlob(f.ns.name, f.digest); err != nil {
			return lookupErrno("truncate "+f.display(), err)
		} else if int64(size) != b.Size {
			return syscall.EPERM
		}
	}
	return f.Getattr(ctx, fh, out)
}

// Open reads a committed blob (pread on the shared file; the kernel keeps
// its cache, the bytes never change). Writing a committed blob is EPERM,
// unless it truncates a blob whose file in the store is missing or
// damaged: that starts an ingest which repairs it. Writing one the
// namespace cannot see starts an ingest (the kernel may still hold the
// name of an ingest that failed). Both handles hold a descriptor until
// their release, and count against the caller's limits (handleLimiter).
func (f *blobFile) Open(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	if errno := f.fsys.enter(&f.ns); errno != 0 {
		return nil, 0, errno
	}
	if flags&syscall.O_ACCMODE != syscall.O_RDONLY {
		if f.activeIngest() != nil {
			return nil, 0, syscall.EBUSY
		}
		slot, errno := f.fsys.handles.acquire(ctx, "open "+f.display())
		if errno != 0 {
			return nil, 0, errno
		}
		defer slot.releaseIfPanicking()
		write := f.fsys.db.WriteBlob
		if flags&syscall.O_TRUNC != 0 {
			// cp over a blob whose file in the store is gone or
			// damaged puts the bytes back; over a sound one it is EPERM.
			write = f.fsys.db.RewriteBlob
		}
		w, err := write(f.ns.name, f.ns.id, f.digest)
		if err != nil {
			slot.release()
			if metadata.IsExists(err) {
				return nil, 0, syscall.EPERM
			}
			return nil, 0, toErrno("open "+f.display(), err)
		}
		return f.startIngest(ctx, w, slot), 0, 0
	}
	slot, errno := f.fsys.handles.acquire(ctx, "open "+f.display())
	if errno != 0 {
		return nil, 0, errno
	}
	defer slot.releaseIfPanicking()
	file, err := f.fsys.db.OpenBlob(f.ns.name, f.digest)
	if err != nil {
		slot.release()
		return nil, 0, toErrno("open "+f.display(), err)
	}
	return &blobReader{file: file, slot: slot}, fuse.FOPEN_KEEP_CACHE, 0
}

// startIngest makes w the ingest under way through f; slot is its handle's
// share of the caller's limits, given back at its release.
func (f *blobFile) startIngest(ctx context.Context, w *metadata.BlobWriter, slot *handleSlot) *blobIngest {
	ing := &blobIngest{file: f, w: w, slot: slot, owner: processOf(ctx), started: time.Now()}
	f.mu.Lock()
	f.ingest = ing
	f.mu.Unlock()
	return ing
}

// forget takes the name of a blob that did not come to be out of the
// kernel's cache (now: see filesystem.notify).
func (f *blobFile) forget(now bool) {
	f.fsys.notify(now, func() { forgetName(f.EmbeddedInode()) })
}

// ingestDone records that ing is over (committed or abandoned).
func (f *blobFile) ingestDone(ing *blobIngest) {
	f.mu.Lock()
	if f.ingest == ing {
		f.ingest = nil
	}
	f.mu.Unlock()
}

// abortIngest ends the ingest under way (rm of a blob being written);
// false when there is none.
func (f *blobFile) abortIngest() bool {
	f.mu.Lock()
	ing := f.ingest
	f.ingest = nil
	f.mu.Unlock()
	if ing == nil {
		return false
	}
	ing.abort()
	return true
}

// blobReader reads a committed blob with pread (spliced by go-fuse).
type blobReader struct {
	file *os.File
	slot *handleSlot
}

var (
	_ = (gofs.FileReader)((*blobReader)(nil))
	_ = (gofs.FileReleaser)((*blobReader)(nil))
)

func (r *blobReader) Read(ctx context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	return fuse.ReadResultFd(r.file.Fd(), off, len(dest)), 0
}

func (r *blobReader) Release(ctx context.Context) syscall.Errno {
	r.file.Close()
	r.slot.release()
	return 0
}

// blobIngest is the write handle of a blob being ingested: writes stream
// into the metadata.BlobWriter (a temporary file, hashed as written, so
// memory stays bounded); they must be sequential (EINVAL otherwise, from
// metadata). The first fsync or close commits: the bytes must hash to the
// name, else it is EBADMSG, nothing is kept, and the kernel forgets the
// name. Closes that are not the writer's do not commit: one before
// anything was written (a shell's `cat layer > blobs/sha256/<hex>` closes
// its copy of the descriptor before cat writes), and one by another
// process (a child that inherited the descriptor, at exec). When the last
// descriptor goes without a commit, the release commits if the bytes are
// right, and otherwise nothing is kept.
type blobIngest struct {
	file    *blobFile
	w       *metadata.BlobWriter
	slot    *handleSlot // released with the handle
	owner   process     // the process that opened it (see closedByOther)
	started time.Time

	mu        sync.Mutex
	committed bool
	aborted   bool
}

// emptyDigest is the digest of no bytes: a close before anything was
// written commits it.
var emptyDigest = digest.SHA256.FromBytes(nil)

var (
	_ = (gofs.FileWriter)((*blobIngest)(nil))
	_ = (gofs.FileReader)((*blobIngest)(nil))
	_ = (gofs.FileFlusher)((*blobIngest)(nil))
	_ = (gofs.FileFsyncer)((*blobIngest)(nil))
	_ = (gofs.FileReleaser)((*blobIngest)(nil))
)

func (ing *blobIngest) Write(ctx context.Context, data []byte, off int64) (uint32, syscall.Errno) {
	ing.mu.Lock()
	aborted := ing.aborted
	ing.mu.Unlock()
	if aborted {
		// The ingest ended (EBADMSG, or rm): these bytes go nowhere.
		return 0, syscall.ENOENT
	}
	n, err := ing.w.WriteAt(data, off)
	if err != nil {
		return uint32(n), toErrno("write "+ing.file.display(), err)
	}
	return uint32(n), 0
}

// Read: nobody reads a blob before it is committed, not even its writer.
func (ing *blobIngest) Read(ctx context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	return nil, syscall.EBADF
}

func (ing *blobIngest) Flush(ctx context.Context) syscall.Errno {
	if closedByOther(ctx, ing.owner) {
		return 0
	}
	return ing.finish(opClose)
}

func (ing *blobIngest) Fsync(ctx context.Context, flags uint32) syscall.Errno {
	return ing.finish(opFsync)
}

func (ing *blobIngest) finish(op string) syscall.Errno {
	ing.mu.Lock()
	if ing.committed || ing.aborted || ing.w.Size() == 0 && ing.file.digest != emptyDigest {
		ing.mu.Unlock()
		return 0
	}
	// Commit checks in its transaction that the namespace is still the one
	// the ingest began in (WriteBlob's nsID).
	err := ing.w.Commit()
	if err == nil {
		ing.committed = true
	} else {
		ing.aborted = true
	}
	ing.mu.Unlock()
	ing.file.ingestDone(ing)
	if err != nil {
		errno := toErrno("commit "+ing.file.display()+" ("+op+")", err)
		ing.file.forget(op == opClose)
		return errno
	}
	return 0
}

// abort discards the ingest (rm of the name while it is written).
func (ing *blobIngest) abort() {
	ing.mu.Lock()
	defer ing.mu.Unlock()
	if !ing.committed && !ing.aborted {
		ing.aborted = true
		ing.w.Abort()
	}
}

func (ing *blobIngest) Release(ctx context.Context) syscall.Errno {
	defer ing.slot.release()
	ing.mu.Lock()
	pending := !ing.committed && !ing.aborted
	ing.mu.Unlock()
	if pending && ing.w.Size() > 0 && ing.finish(opRelease) == 0 {
		return 0
	}
	ing.mu.Lock()
	abandoned := !ing.committed && !ing.aborted
	if abandoned {
		ing.aborted = true
		ing.w.Abort()
	}
	ing.mu.Unlock()
	ing.file.ingestDone(ing)
	if abandoned {
		ing.file.forget(false)
	}
	return 0
}
