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

	labels pendingLabels // set while it is written (cp -a), given to the blob by the commit

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
	if ing.committed || ing.aborted || ing.w.Size() == 0 && ing.file.digest != emptyDigest && !ing.w.Failed() {
		ing.mu.Unlock()
		return 0
	}
	// Commit checks in its transaction that the namespace is still the one
	// the ingest began in (ContentStore.Writer's nsID).
	err := ing.w.CommitWithLabels(ing.labels.snapshot())
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

// ingestOpenFlags: the bytes of a blob being written go from the writer's
// buffer to the daemon (direct I/O) instead of through the kernel's page
// cache, which copied each of them once more into pages allocated for a
// file nobody reads before it is committed (a fifth of a pull's CPU in
// the nsfs pull process).
const ingestOpenFlags = fuse.FOPEN_DIRECT_IO
