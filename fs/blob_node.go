package fs

import (
	"context"
	"sync"
	"syscall"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/nsfs/nsfs/metadata"
	"github.com/opencontainers/go-digest"
)

// blobFile is a blob as the namespace sees it: read-only once committed;
// labels are per namespace. Its state comes from the store at each call
// (go-fuse hands back the same node for the same digest), except while an
// ingest through it is under way. Its handles are in blob_handles.go.
//
//	$ sha256sum blobs/sha256/4b7a…
//	4b7a…  blobs/sha256/4b7a…
//	$ setfattr -n user.note -v base blobs/sha256/4b7a…   # this namespace's label
//	$ echo x >> blobs/sha256/4b7a…
//	bash: blobs/sha256/4b7a…: Operation not permitted
//	$ cp layer.tar blobs/sha256/4b7a…   # its own bytes: nothing changes (a damaged file in the store is repaired)
//	$ cp other.tar blobs/sha256/4b7a…
//	cp: failed to close 'blobs/sha256/4b7a…': Bad message
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
	_ = (gofs.NodeStatfser)((*blobFile)(nil))
	_ = (gofs.NodeGetattrer)((*blobFile)(nil))
	_ = (gofs.NodeSetattrer)((*blobFile)(nil))
	_ = (gofs.NodeGetxattrer)((*blobFile)(nil))
	_ = (gofs.NodeSetxattrer)((*blobFile)(nil))
	_ = (gofs.NodeRemovexattrer)((*blobFile)(nil))
	_ = (gofs.NodeListxattrer)((*blobFile)(nil))
	_ = (gofs.NodeOpener)((*blobFile)(nil))
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
		f.fsys.fillFile(&out.Attr, f.ns, blobPerm, ing.w.Size(), ing.started, ing.started)
		return 0
	}
	b, err := f.fsys.db.Content().Stat(f.ns.name, f.digest)
	if err != nil {
		return lookupErrno("getattr "+f.display(), err)
	}
	fillBlob(f.fsys, f.ns, &out.Attr, &b)
	return 0
}

// Setattr: an ingest can only be "truncated" to what it has (it is
// written sequentially, EINVAL otherwise); a committed blob not at all
// (EPERM). A utimes mtime of a blob the namespace holds is stored
// (times.go); of an ingest, mode and owner are accepted and not stored.
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
		} else if b, err := f.fsys.db.Content().Stat(f.ns.name, f.digest); err != nil {
			return lookupErrno("truncate "+f.display(), err)
		} else if int64(size) != b.Size {
			return syscall.EPERM
		}
	}
	if mtime, ok := in.GetMTime(); ok && f.activeIngest() == nil {
		if err := f.fsys.db.SetModified(metadata.Object{Namespace: f.ns.name, Blob: f.digest}, mtime); err != nil {
			return lookupErrno("utimes "+f.display(), err)
		}
	}
	return f.Getattr(ctx, fh, out)
}

// Open reads a committed blob (pread on the shared file; the kernel keeps
// its cache, the bytes never change). Writing a committed blob is EPERM,
// unless it truncates (cp, tar -x, rsync over a file that is there): that
// starts an ingest whose close verifies the bytes, so that the blob's own
// bytes succeed and change nothing (or repair a file in the store that is
// missing or damaged), and others are EBADMSG. Writing one the
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
		write := f.fsys.db.Content().Writer
		if flags&syscall.O_TRUNC != 0 {
			// cp over a blob: its own bytes succeed (and put back
			// a file in the store that is gone or damaged).
			write = f.fsys.db.Content().Rewriter
		}
		w, err := write(f.ns.name, f.ns.id, f.digest)
		if err != nil {
			slot.release()
			if metadata.IsExists(err) {
				return nil, 0, syscall.EPERM
			}
			return nil, 0, toErrno("open "+f.display(), err)
		}
		return f.startIngest(ctx, w, slot), ingestOpenFlags, 0
	}
	slot, errno := f.fsys.handles.acquire(ctx, "open "+f.display())
	if errno != 0 {
		return nil, 0, errno
	}
	defer slot.releaseIfPanicking()
	file, err := f.fsys.db.Content().Open(f.ns.name, f.digest)
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
