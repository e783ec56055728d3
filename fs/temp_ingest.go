package fs

import (
	"context"
	"sync"
	"syscall"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/nsfs/nsfs/metadata"
	"github.com/nsfs/nsfs/names"
	"github.com/opencontainers/go-digest"
)

// tempFile is a temporary ingest: a file of any name that is no digest,
// created in blobs/sha256 by a tool that writes a blob under a name of
// its own and then renames it to the digest (skopeo's oci-put-blob123,
// crane's <hex><random>, rsync's .<hex>.XXXXXX). Its bytes stream into
// an ingest file, hashed as they arrive (so they must come in order);
// the rename to <hex> commits them, verified, with the labels set on the
// temporary file (rsync -X sets them before it renames). It is visible
// until renamed or removed, and never counts as a blob the namespace
// holds: left behind, it keeps no rmdir from succeeding, and gc collects
// its file after the grace period (the name goes with it; a remount
// forgets it at once).
//
//	$ cp layer.tar blobs/sha256/.4b7a….Xa81Zq
//	$ ls -a blobs/sha256
//	.  ..  .4b7a….Xa81Zq
//	$ mv blobs/sha256/.4b7a….Xa81Zq blobs/sha256/4b7a…
//	$ cp other.tar blobs/sha256/tmp && mv blobs/sha256/tmp blobs/sha256/4b7a…
//	mv: cannot move 'blobs/sha256/tmp' to 'blobs/sha256/4b7a…': Bad message
//	$ ls blobs/sha256
//	4b7a…
type tempFile struct {
	gofs.Inode
	nodeBase
	t *tempIngest
}

var (
	_ = (gofs.InodeEmbedder)((*tempFile)(nil))
	_ = (gofs.NodeStatfser)((*tempFile)(nil))
	_ = (gofs.NodeGetattrer)((*tempFile)(nil))
	_ = (gofs.NodeSetattrer)((*tempFile)(nil))
	_ = (gofs.NodeGetxattrer)((*tempFile)(nil))
	_ = (gofs.NodeSetxattrer)((*tempFile)(nil))
	_ = (gofs.NodeRemovexattrer)((*tempFile)(nil))
	_ = (gofs.NodeListxattrer)((*tempFile)(nil))
	_ = (gofs.NodeOpener)((*tempFile)(nil))
)

// tempKey names a temporary ingest: its namespace, its directory inside
// the namespace (sha256Key) and its name there.
type tempKey struct {
	ns   uint64
	dir  string
	name string
}

// tempIngest is the state of one temporary ingest, which its nodes share.
type tempIngest struct {
	ns  nsRef
	ino uint64 // fixed for its life (inodeTable.temp)

	mu      sync.Mutex
	key     tempKey // changes when it is renamed to another temporary name
	w       *metadata.BlobWriter
	slot    *handleSlot // held for its life: it holds a descriptor
	created time.Time
	mtime   time.Time         // as utimes last set it (rsync -a)
	labels  map[string]string // set on it, given to the blob at the rename
	gone    bool              // renamed to a blob, removed or collected
}

// tempIngests are the mount's temporary ingests.
type tempIngests struct {
	mu    sync.Mutex
	byKey map[tempKey]*tempIngest
}

// isBlobName says whether name in blobs/sha256 is a blob's (a sha256
// digest); any other name is a temporary ingest's.
func isBlobName(name string) bool {
	return names.ValidateDigest(blobDigest(name)) == nil
}

// temp hands out the number of a new temporary ingest, never reused.
func (t *inodeTable) temp() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	ino := t.next
	t.next++
	return ino
}

// get returns the temporary ingest k names, if it is still there (one
// whose file gc collected is forgotten now).
func (r *tempIngests) get(k tempKey) *tempIngest {
	r.mu.Lock()
	t := r.byKey[k]
	r.mu.Unlock()
	if t != nil && t.collected() {
		r.remove(t)
		return nil
	}
	return t
}

// list returns the temporary ingests in directory dir of namespace ns.
func (r *tempIngests) list(ns uint64, dir string) []*tempIngest {
	r.mu.Lock()
	var list []*tempIngest
	for k, t := range r.byKey {
		if k.ns == ns && k.dir == dir {
			list = append(list, t)
		}
	}
	r.mu.Unlock()
	kept := list[:0]
	for _, t := range list {
		if t.collected() {
			r.remove(t)
			continue
		}
		kept = append(kept, t)
	}
	return kept
}

// add registers t under its key, replacing (and discarding) whatever
// temporary ingest had that name. It first forgets the ones gc collected,
// so that those left behind give their descriptors back.
func (r *tempIngests) add(t *tempIngest) {
	r.mu.Lock()
	if r.byKey == nil {
		r.byKey = map[tempKey]*tempIngest{}
	}
	var stale []*tempIngest
	for _, o := range r.byKey {
		if o.collected() {
			stale = append(stale, o)
		}
	}
	old := r.byKey[t.key]
	r.byKey[t.key] = t
	r.mu.Unlock()
	for _, o := range stale {
		r.remove(o)
	}
	if old != nil && old != t {
		old.discard()
	}
}

// remove forgets t and discards its bytes, unless they were committed.
func (r *tempIngests) remove(t *tempIngest) {
	r.mu.Lock()
	t.mu.Lock()
	if r.byKey[t.key] == t {
		delete(r.byKey, t.key)
	}
	t.mu.Unlock()
	r.mu.Unlock()
	t.discard()
}

// move renames t to newKey, replacing the temporary ingest there (EEXIST
// with noReplace).
func (r *tempIngests) move(t *tempIngest, newKey tempKey, noReplace bool) syscall.Errno {
	r.mu.Lock()
	old := r.byKey[newKey]
	if old == t {
		r.mu.Unlock()
		return 0
	}
	if old != nil && noReplace {
		r.mu.Unlock()
		return syscall.EEXIST
	}
	t.mu.Lock()
	if r.byKey[t.key] == t {
		delete(r.byKey, t.key)
	}
	t.key = newKey
	t.mu.Unlock()
	r.byKey[newKey] = t
	r.mu.Unlock()
	if old != nil {
		old.discard()
	}
	return 0
}

// newTempIngest starts a temporary ingest called name in directory dir
// (sha256Key) of namespace ns.
func (fsys *filesystem) newTempIngest(ctx context.Context, ns nsRef, dir, name, display string) (*tempIngest, syscall.Errno) {
	slot, errno := fsys.handles.acquire(ctx, "create "+display)
	if errno != 0 {
		return nil, errno
	}
	defer slot.releaseIfPanicking()
	w, err := fsys.db.TempWriter(ns.name, ns.id)
	if err != nil {
		slot.release()
		return nil, toErrno("create "+display, err)
	}
	now := time.Now()
	t := &tempIngest{
		ns:      ns,
		ino:     fsys.inodes.temp(),
		key:     tempKey{ns.id, dir, name},
		w:       w,
		slot:    slot,
		created: now,
		mtime:   now,
	}
	fsys.temps.add(t)
	return t, 0
}

// collected says whether t's file went (gc, after the grace period).
func (t *tempIngest) collected() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return !t.gone && t.w.Removed()
}

// discard drops t's bytes (unless committed) and gives back its slot.
func (t *tempIngest) discard() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.gone {
		return
	}
	t.gone = true
	_ = t.w.Abort()
	t.slot.release()
}

// truncate empties t (open with O_TRUNC, truncate to 0): its bytes are
// hashed as written, so it starts a new ingest file.
func (t *tempIngest) truncate(fsys *filesystem) syscall.Errno {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.gone {
		return syscall.ENOENT
	}
	if t.w.Size() == 0 {
		return 0
	}
	w, err := fsys.db.TempWriter(t.ns.name, t.ns.id)
	if err != nil {
		return toErrno("truncate ns/"+t.ns.name+"/"+t.key.dir+"/"+t.key.name, err)
	}
	_ = t.w.Abort()
	t.w = w
	return 0
}

// writer is t's current writer.
func (t *tempIngest) writer() *metadata.BlobWriter {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.w
}

// commitAs commits t's bytes as blob dg of its namespace, with its
// labels; t is gone afterwards, unless the commit was refused before it
// began (the bytes are another blob's: a failed rename changes nothing).
func (t *tempIngest) commitAs(dg digest.Digest) (gone bool, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.gone {
		return true, metadata.ErrNotFound
	}
	err = t.w.CommitAs(dg, t.labels)
	if err != nil && !t.w.Removed() {
		return false, err
	}
	t.gone = true
	_ = t.w.Abort()
	t.slot.release()
	return true, err
}

// node is a node of t, for a lookup or a create in dir.
func (t *tempIngest) node(ctx context.Context, dir *gofs.Inode, fsys *filesystem) *gofs.Inode {
	return dir.NewInode(ctx, &tempFile{nodeBase: nodeBase{fsys}, t: t}, fileAttr(t.ino))
}

// fill fills t's attributes.
func (t *tempIngest) fill(fsys *filesystem, a *fuse.Attr) {
	t.mu.Lock()
	mtime := t.mtime
	t.mu.Unlock()
	// A temporary file is its writer's: writable, as the file it stands
	// for was before it was committed.
	fsys.fillFile(a, imagePerm, t.writer().Size(), mtime, t.created)
	a.Ino = t.ino
}

func (t *tempIngest) display() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return "ns/" + t.ns.name + "/" + t.key.dir + "/" + t.key.name
}

// live returns ENOENT once t is gone (its node can outlive it).
func (f *tempFile) live() syscall.Errno {
	if errno := f.fsys.enter(&f.t.ns); errno != 0 {
		return errno
	}
	f.t.mu.Lock()
	gone := f.t.gone
	f.t.mu.Unlock()
	if gone {
		return syscall.ENOENT
	}
	return 0
}

func (f *tempFile) Getattr(ctx context.Context, fh gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	if errno := f.live(); errno != 0 {
		return errno
	}
	f.t.fill(f.fsys, &out.Attr)
	return 0
}

// Setattr keeps the times (rsync -a sets them before its rename) in memory
// only, so that the ingest file keeps its last write for gc's grace
// period; a size is accepted only if it is the current one (writes come in
// order), or 0. Mode and owner are accepted, as elsewhere.
func (f *tempFile) Setattr(ctx context.Context, fh gofs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	if errno := f.live(); errno != 0 {
		return errno
	}
	if size, ok := in.GetSize(); ok && int64(size) != f.t.writer().Size() {
		if size != 0 {
			return syscall.EINVAL
		}
		if errno := f.t.truncate(f.fsys); errno != 0 {
			return errno
		}
	}
	if mtime, ok := in.GetMTime(); ok {
		f.t.mu.Lock()
		f.t.mtime = mtime
		f.t.mu.Unlock()
	}
	return f.Getattr(ctx, fh, out)
}

// Open writes on where the bytes stand (O_TRUNC starts again); reads are
// EBADF, as for a blob being written. The handles share the ingest's
// descriptor.
func (f *tempFile) Open(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	if errno := f.live(); errno != 0 {
		return nil, 0, errno
	}
	if flags&syscall.O_TRUNC != 0 {
		if errno := f.t.truncate(f.fsys); errno != 0 {
			return nil, 0, errno
		}
	}
	return &tempHandle{t: f.t}, fuse.FOPEN_DIRECT_IO, 0
}

// tempHandle writes a temporary ingest.
type tempHandle struct {
	t *tempIngest
}

var (
	_ = (gofs.FileWriter)((*tempHandle)(nil))
	_ = (gofs.FileReader)((*tempHandle)(nil))
	_ = (gofs.FileFsyncer)((*tempHandle)(nil))
)

func (h *tempHandle) Write(ctx context.Context, data []byte, off int64) (uint32, syscall.Errno) {
	h.t.mu.Lock()
	gone := h.t.gone
	h.t.mu.Unlock()
	if gone {
		// Renamed into a blob (read-only now) or removed.
		return 0, syscall.EBADF
	}
	n, err := h.t.writer().WriteAt(data, off)
	if err != nil {
		return uint32(n), toErrno("write "+h.t.display(), err)
	}
	return uint32(n), 0
}

// Read: nobody reads an ingest before it is committed.
func (h *tempHandle) Read(ctx context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	return nil, syscall.EBADF
}

// Fsync succeeds: the bytes become durable at the rename that commits
// them (a temporary file does not outlive the daemon anyway).
func (h *tempHandle) Fsync(ctx context.Context, flags uint32) syscall.Errno { return 0 }

// The labels of a temporary ingest live in memory until its rename, with
// the rules of a blob's labels.

func (f *tempFile) Getxattr(ctx context.Context, attr string, dest []byte) (uint32, syscall.Errno) {
	key, errno := labelKey("getxattr", attr, syscall.ENODATA)
	if errno != 0 {
		return 0, errno
	}
	if errno := f.live(); errno != 0 {
		return 0, errno
	}
	f.t.mu.Lock()
	value, ok := f.t.labels[key]
	f.t.mu.Unlock()
	if !ok {
		return 0, syscall.ENODATA
	}
	return getValue(value, dest)
}

func (f *tempFile) Setxattr(ctx context.Context, attr string, data []byte, flags uint32) syscall.Errno {
	key, cond, errno := parseSetxattr(attr, data, flags)
	if errno != 0 {
		return errno
	}
	if errno := f.live(); errno != 0 {
		return errno
	}
	value := string(data)
	op := "setxattr " + f.t.display() + " " + attr
	if err := names.ValidateLabel(key, value); err != nil {
		return toErrno(op, err)
	}
	f.t.mu.Lock()
	defer f.t.mu.Unlock()
	_, exists := f.t.labels[key]
	if err := cond.Check(exists); err != nil {
		return toErrno(op, err)
	}
	if value == "" {
		delete(f.t.labels, key)
		return 0
	}
	next := make(map[string]string, len(f.t.labels)+1)
	for k, v := range f.t.labels {
		next[k] = v
	}
	next[key] = value
	if err := names.CheckLabelsSize(xattrOwner(op), names.LabelsSize(next)); err != nil {
		return toErrno(op, err)
	}
	f.t.labels = next
	return 0
}

// xattrOwner names a temporary file in a label error.
type xattrOwner string

func (o xattrOwner) String() string { return string(o) }

func (f *tempFile) Removexattr(ctx context.Context, attr string) syscall.Errno {
	key, errno := labelKey("removexattr", attr, syscall.ENOTSUP)
	if errno != 0 {
		return errno
	}
	if errno := f.live(); errno != 0 {
		return errno
	}
	f.t.mu.Lock()
	defer f.t.mu.Unlock()
	if _, ok := f.t.labels[key]; !ok {
		return syscall.ENODATA
	}
	delete(f.t.labels, key)
	return 0
}

func (f *tempFile) Listxattr(ctx context.Context, dest []byte) (uint32, syscall.Errno) {
	if errno := f.live(); errno != 0 {
		return 0, errno
	}
	f.t.mu.Lock()
	defer f.t.mu.Unlock()
	return listLabels(f.t.labels, dest)
}
