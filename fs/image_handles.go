package fs

import (
	"context"
	"io"
	"log"
	"strconv"
	"sync"
	"syscall"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/nsfs/nsfs/metadata"
	"github.com/opencontainers/go-digest"
	"github.com/pkg/errors"
)

// imageReader reads the manifest the image was at open: the blob of that
// digest, one snapshot whatever the image becomes meanwhile. It holds
// neither the bytes nor a descriptor: each read opens the blob's file,
// reads into the kernel's buffer and closes it, so that a user's open
// descriptors cost the daemon nothing (a copy per open let 500 of them
// on one 4 MiB image take gigabytes). The bytes stay readable as long as
// the namespace holds the blob: a reader of an image that is removed or
// replaced, and whose manifest no image of the namespace still names,
// gets ENOENT: the bytes it opened are gone from the store.
type imageReader struct {
	file   *imageFile
	digest digest.Digest
	size   int64
}

var _ = (gofs.FileReader)((*imageReader)(nil))

func (r *imageReader) Read(ctx context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	f := r.file
	if errno := f.fsys.enter(&f.ns); errno != 0 {
		return nil, errno
	}
	if off < 0 {
		return nil, syscall.EINVAL
	}
	if off >= r.size {
		// The end, without opening anything (a read to EOF asks once more).
		return fuse.ReadResultData(nil), 0
	}
	dest = dest[:min(int64(len(dest)), r.size-off)]
	blob, err := f.fsys.db.Content().Open(f.ns.name, r.digest)
	if err != nil {
		return nil, toErrno("read "+f.display()+" (manifest "+string(r.digest)+")", err)
	}
	defer blob.Close()
	n, err := blob.ReadAt(dest, off)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, toErrno("read "+f.display()+" (manifest "+string(r.digest)+")", err)
	}
	return readResult(dest[:n]), 0
}

// readResult answers a read with data, written to the kernel with writev.
// (go-fuse would first try to splice a ReadResultData through a pipe,
// which cannot hold a 1 MiB read, and log each failure: one log line per
// MiB any user reads.)
func readResult(data []byte) fuse.ReadResult {
	return fuse.ReadResultVector([][]byte{data})
}

// imageWriter is a write handle: the bytes in memory, committed with
// Images().Put at fsync and close. The buffer's capacity counts against the
// caller's limits (slot): a write or truncate that would pass them is
// ENOMEM.
type imageWriter struct {
	file  *imageFile
	slot  *handleSlot // released with the handle
	owner process     // the process that opened it (see closedByOther)

	mu      sync.Mutex
	buf     []byte
	dirty   bool // buf differs from the committed image: Getattr shows buf
	written bool // changed since the last commit: commit at close
	failed  bool // the last commit failed, and nothing changed since
	// refused: a write was refused (EFBIG past metadata.MaxManifestSize,
	// ENOMEM past the caller's buffer limit); the buffer holds only part
	// of what the writer meant, which no commit may store (a manifest
	// padded with whitespace would pass as one). Until a truncate starts
	// the bytes over, commits fail with that errno.
	refused syscall.Errno
	// prefix judges the bytes as they are written in order: a write whose
	// bytes can begin no manifest is EINVAL at once (and refused).
	prefix metadata.ManifestPrefix
	mtime  time.Time
}

var (
	_ = (gofs.FileReader)((*imageWriter)(nil))
	_ = (gofs.FileWriter)((*imageWriter)(nil))
	_ = (gofs.FileFlusher)((*imageWriter)(nil))
	_ = (gofs.FileFsyncer)((*imageWriter)(nil))
	_ = (gofs.FileReleaser)((*imageWriter)(nil))
)

func (w *imageWriter) isDirty() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.dirty
}

func (w *imageWriter) sizeAndTime() (int64, time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return int64(len(w.buf)), w.mtime
}

func (w *imageWriter) snapshot() ([]byte, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]byte(nil), w.buf...), w.dirty
}

// Read serves O_RDWR handles from the buffer.
func (w *imageWriter) Read(ctx context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if off >= int64(len(w.buf)) {
		return fuse.ReadResultData(nil), 0
	}
	// Into the kernel's own buffer: w.buf may change once the lock is gone.
	n := copy(dest, w.buf[off:])
	return readResult(dest[:n]), 0
}

// Write puts data at off in the buffer; past metadata.MaxManifestSize it
// is EFBIG, past the caller's buffer limit ENOMEM, and bytes that can
// begin no manifest (metadata.ManifestPrefix) EINVAL, at write time.
func (w *imageWriter) Write(ctx context.Context, data []byte, off int64) (uint32, syscall.Errno) {
	end := off + int64(len(data))
	if off < 0 || end > metadata.MaxManifestSize {
		w.mu.Lock()
		w.refused = syscall.EFBIG
		w.mu.Unlock()
		return 0, w.file.tooLarge("write", end)
	}
	w.mu.Lock()
	if err := w.prefix.Write(off, data); err != nil {
		w.refused = syscall.EINVAL
		w.mu.Unlock()
		return 0, toErrno("write "+w.file.display(), err)
	}
	if end > int64(len(w.buf)) {
		if errno := w.resize(end); errno != 0 {
			w.refused = errno
			w.mu.Unlock()
			return 0, errno
		}
	}
	copy(w.buf[off:], data)
	w.dirty, w.written, w.failed, w.mtime = true, true, false, time.Now()
	w.mu.Unlock()
	w.file.wrote(w)
	return uint32(len(data)), 0
}

func (w *imageWriter) truncate(size int64) syscall.Errno {
	if size > metadata.MaxManifestSize {
		return w.file.tooLarge("truncate", size)
	}
	w.mu.Lock()
	if errno := w.resize(size); errno != 0 {
		w.mu.Unlock()
		return errno
	}
	w.prefix.Truncate(size)
	w.dirty, w.written, w.failed, w.refused, w.mtime = true, true, false, 0, time.Now()
	w.mu.Unlock()
	w.file.wrote(w)
	return 0
}

// resize makes the buffer size bytes long (zeros past its end), counting
// its capacity against the caller's limits first (ENOMEM over them; the
// buffer is then unchanged). It grows by doubling, up to
// metadata.MaxManifestSize, so that many small writes stay cheap, and
// gives memory back when it shrinks to under half. Called with w.mu held.
func (w *imageWriter) resize(size int64) syscall.Errno {
	what := "write " + w.file.display()
	capacity := int64(cap(w.buf))
	switch {
	case size > capacity:
		grown := max(size, min(2*capacity, metadata.MaxManifestSize))
		if errno := w.slot.setBuffered(grown, what); errno != 0 {
			return errno
		}
		buf := make([]byte, size, grown)
		copy(buf, w.buf)
		w.buf = buf
	case size < capacity/2:
		w.buf = append([]byte(nil), w.buf[:size]...)
		w.slot.setBuffered(int64(cap(w.buf)), what)
	default:
		w.buf = resize(w.buf, size)
	}
	return 0
}

// Flush commits at a close by the process that opened the handle.
func (w *imageWriter) Flush(ctx context.Context) syscall.Errno {
	if closedByOther(ctx, w.owner) {
		return 0
	}
	return w.commit(opClose)
}

func (w *imageWriter) Fsync(ctx context.Context, flags uint32) syscall.Errno {
	return w.commit(opFsync)
}

// commit stores the buffer as the image when bytes were written since the
// last commit. On failure the buffer stays, so that a later close (of
// another descriptor of this handle) can still commit.
//
// The write names the image by ref, ID and namespace ID; metadata decides
// in its transaction whether that is still the image (a new one is
// created with its reserved ID and the labels set while it was pending).
// An image that is gone (ErrImageGone: removed, renamed away or replaced
// meanwhile) takes the bytes with it and the close succeeds; a namespace
// deleted meanwhile is ENOENT.
func (w *imageWriter) commit(op string) syscall.Errno {
	w.mu.Lock()
	if !w.written {
		w.mu.Unlock()
		return 0
	}
	if refused := w.refused; refused != 0 {
		// Its buffer is no image, not even the writer's: stat shows the
		// stored one again, also before the handle's release.
		w.failed, w.dirty = true, false
		w.mu.Unlock()
		w.file.commitFailed(op == opClose)
		return refused
	}
	f := w.file
	f.nameMu.Lock()
	f.mu.Lock()
	ref, life := f.ref, f.life
	var labels map[string]string
	if life.unborn() && f.writes != nil {
		labels = f.writes.labels.Labels()
	}
	f.mu.Unlock()
	var err error
	if life == removedUnborn {
		// Unlinked while being created: it never was in the store.
		err = errors.Wrapf(metadata.ErrImageGone, "image %q in namespace %q was removed before its first commit", ref, f.ns.name)
	} else {
		_, err = f.fsys.db.Images().Put(metadata.ImageWrite{
			Namespace:   f.ns.name,
			NamespaceID: f.ns.id,
			Ref:         ref,
			Manifest:    w.buf,
			ID:          f.id,
			Create:      life.unborn(),
			Labels:      labels,
		})
	}
	if err == nil {
		// Before another commit can read its life (under nameMu): a
		// second Create of an image unlinked since would recreate it.
		f.committed()
	}
	f.nameMu.Unlock()
	gone := metadata.IsImageGone(err)
	if err == nil || gone {
		w.dirty, w.written = false, false
	} else {
		w.failed = true
	}
	w.mu.Unlock()
	switch {
	case err == nil:
		f.committedTimes(op == opClose)
	case gone:
		// Its bytes go with it, as on any filesystem.
		f.detach()
		return 0
	case err != nil:
		var errno syscall.Errno
		if len(w.buf) == 0 {
			// What a shell closes after `> images/x` opened it and before
			// the command writes: EINVAL, but not worth a log line.
			errno = errnoOf(err)
		} else {
			errno = toErrno("commit "+imagePath(f.ns, ref)+" ("+op+")", err)
		}
		f.commitFailed(op == opClose)
		return errno
	}
	return 0
}

// Release ends the handle. Bytes no close committed (the last close was
// another process's) are committed now, where no error can be returned:
// a failure is only logged.
func (w *imageWriter) Release(ctx context.Context) syscall.Errno {
	w.mu.Lock()
	retry := w.written && !w.failed
	w.mu.Unlock()
	if retry {
		w.commit(opRelease)
	}
	w.mu.Lock()
	dirty := w.dirty
	// Left empty (touch, `: >`): the commits' EINVAL was not logged, as
	// a shell's close before its command writes makes one every time.
	leftEmpty := w.written && w.failed && len(w.buf) == 0
	w.buf = nil
	w.mu.Unlock()
	if leftEmpty {
		log.Printf("close %s: the file was left empty, and an empty file is no manifest: nothing was stored (EINVAL)", strconv.Quote(w.file.display()))
	}
	w.slot.release()
	w.file.released(w, dirty)
	return 0
}
