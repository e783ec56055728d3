package fs

import (
	"context"
	"log"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/nsfs/nsfs/metadata"
	"github.com/pkg/errors"
)

// Names and inode-table keys of the two files that make a namespace an
// OCI image layout.
const (
	ociLayoutName   = metadata.FileOCILayout
	layoutIndexName = metadata.FileLayoutIndex
)

// layoutFile is ns/<name>/oci-layout or ns/<name>/index.json: the
// namespace as an OCI image layout, for skopeo, oras, crane and umoci.
// oci-layout is fixed; index.json lists every image of the namespace (one
// store snapshot per open), and writing it whole sets the namespace's refs
// to the ones it names, in one transaction (metadata.LayoutStore).
//
//	$ cat /mnt/ns/dev/oci-layout
//	{"imageLayoutVersion":"1.0.0"}
//	$ jq -r '.manifests[].annotations["org.opencontainers.image.ref.name"]' /mnt/ns/dev/index.json
//	docker.io/library/redis:latest
//	$ skopeo inspect oci:/mnt/ns/dev:docker.io/library/redis:latest
//	$ echo '{"imageLayoutVersion":"2.0.0"}' > /mnt/ns/dev/oci-layout
//	bash: echo: write error: Invalid argument
type layoutFile struct {
	gofs.Inode
	nodeBase
	noXattrs
	ns   nsRef
	name string // ociLayoutName or layoutIndexName

	bases layoutBases // of index.json: what each process read last
}

// layoutBases remember, per process, the index.json it read last (or
// wrote last): the base its next write is measured against
// (metadata.LayoutStore.PutIndex), so that a tool's rewrite changes
// only what the tool changed. Bounded: the oldest are forgotten first,
// and a write without a base sets the refs as it names them.
type layoutBases struct {
	mu     sync.Mutex
	byProc map[int]layoutBase
}

type layoutBase struct {
	data []byte
	at   time.Time
}

// maxLayoutBases bounds the processes remembered per namespace.
const maxLayoutBases = 64

func (b *layoutBases) remember(p process, data []byte) {
	if p.tgid == 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.byProc == nil {
		b.byProc = map[int]layoutBase{}
	}
	if _, ok := b.byProc[p.tgid]; !ok && len(b.byProc) >= maxLayoutBases {
		oldest := 0
		for pid, base := range b.byProc {
			if oldest == 0 || base.at.Before(b.byProc[oldest].at) {
				oldest = pid
			}
		}
		delete(b.byProc, oldest)
	}
	b.byProc[p.tgid] = layoutBase{data: data, at: time.Now()}
}

func (b *layoutBases) of(p process) []byte {
	if p.tgid == 0 {
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.byProc[p.tgid].data
}

var (
	_ = (gofs.InodeEmbedder)((*layoutFile)(nil))
	_ = (gofs.NodeStatfser)((*layoutFile)(nil))
	_ = (gofs.NodeGetattrer)((*layoutFile)(nil))
	_ = (gofs.NodeSetattrer)((*layoutFile)(nil))
	_ = (gofs.NodeGetxattrer)((*layoutFile)(nil))
	_ = (gofs.NodeSetxattrer)((*layoutFile)(nil))
	_ = (gofs.NodeRemovexattrer)((*layoutFile)(nil))
	_ = (gofs.NodeListxattrer)((*layoutFile)(nil))
	_ = (gofs.NodeOpener)((*layoutFile)(nil))
)

// uncachedAttr is the attribute timeout of index.json, whose size
// changes with every image: the kernel asks again at each stat. (Zero
// would mean "unset" to go-fuse, which puts the mount's default there.)
const uncachedAttr = time.Nanosecond

// isLayoutFile says whether name is one of the layout's files.
func isLayoutFile(name string) bool { return name == ociLayoutName || name == layoutIndexName }

func newLayoutFile(fsys *filesystem, ns nsRef, name string) *layoutFile {
	return &layoutFile{nodeBase: nodeBase{fsys}, ns: ns, name: name}
}

func (f *layoutFile) display() string { return "ns/" + f.ns.name + "/" + f.name }

// ino is the file's inode number: fixed while the namespace exists.
func (f *layoutFile) ino() uint64 { return f.fsys.inodes.dir(f.ns.id, f.name) }

// content is the file's bytes now: index.json from one store snapshot.
func (f *layoutFile) content() ([]byte, syscall.Errno) {
	if f.name == ociLayoutName {
		return metadata.OCILayout, 0
	}
	data, err := f.fsys.db.Layout().Index(f.ns.name)
	if err != nil {
		return nil, lookupErrno("read "+f.display(), err)
	}
	return data, 0
}

// fill answers the attributes: the namespace's times, the bytes' size.
func (f *layoutFile) fill(a *fuse.Attr, size int) syscall.Errno {
	times, _, err := f.fsys.db.DirTimes(f.ns.name, f.name)
	if err != nil {
		return lookupErrno("getattr "+f.display(), err)
	}
	f.fillWith(a, size, times)
	return 0
}

func (f *layoutFile) fillWith(a *fuse.Attr, size int, times metadata.Times) {
	f.fsys.fillFile(a, f.ns, imagePerm, int64(size), times.Modified, times.Changed)
	a.Ino = f.ino()
}

// stat answers the attributes of the file as it is now: for index.json,
// its size and times come from one pass over the namespace's images.
func (f *layoutFile) stat(a *fuse.Attr) syscall.Errno {
	if f.name == ociLayoutName {
		return f.fill(a, len(metadata.OCILayout))
	}
	data, times, err := f.fsys.db.Layout().IndexAndTimes(f.ns.name)
	if err != nil {
		return lookupErrno("getattr "+f.display(), err)
	}
	f.fillWith(a, len(data), times)
	return 0
}

// Getattr: index.json changes with every image, so the kernel keeps no
// size of it (reads are direct, see Open).
func (f *layoutFile) Getattr(ctx context.Context, fh gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	if errno := f.fsys.enter(&f.ns); errno != 0 {
		return errno
	}
	if w, ok := fh.(*layoutWriter); ok {
		return f.fill(&out.Attr, w.size())
	}
	if f.name == layoutIndexName {
		out.SetTimeout(uncachedAttr)
	}
	return f.stat(&out.Attr)
}

// Setattr: a truncate is what starts a rewrite (O_TRUNC, or ftruncate
// before writing); it takes effect at the commit, with the bytes written.
// A time set is kept (metadata.FileLayoutIndex); mode and owner are
// accepted and not stored.
func (f *layoutFile) Setattr(ctx context.Context, fh gofs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	if errno := f.fsys.enter(&f.ns); errno != 0 {
		return errno
	}
	if size, ok := in.GetSize(); ok {
		w, ok := fh.(*layoutWriter)
		if !ok {
			return syscall.EPERM // truncate(2) by path: no write follows
		}
		if errno := w.truncate(int64(size)); errno != 0 {
			return errno
		}
	}
	if mtime, ok := in.GetMTime(); ok {
		if err := f.fsys.db.SetDirModified(f.ns.name, f.name, mtime); err != nil {
			return toErrno("utimes "+f.display(), err)
		}
	}
	return f.Getattr(ctx, fh, out)
}

// Open for reading snapshots the bytes; reads are direct, since the size
// the kernel last heard of may be another snapshot's. Open for writing
// starts a buffer (empty with O_TRUNC, else the current bytes), committed
// at fsync and close.
func (f *layoutFile) Open(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	if errno := f.fsys.enter(&f.ns); errno != 0 {
		return nil, 0, errno
	}
	if flags&syscall.O_APPEND != 0 {
		return nil, 0, syscall.EINVAL
	}
	data, errno := f.content()
	if errno != 0 {
		return nil, 0, errno
	}
	// Each handle holds its bytes in the daemon: it takes a handle slot
	// and counts them, as an image's handles do (limits.go).
	slot, errno := f.fsys.handles.acquire(ctx, "open "+f.display())
	if errno != 0 {
		return nil, 0, errno
	}
	defer slot.releaseIfPanicking()
	owner := processOf(ctx)
	if flags&syscall.O_TRUNC == 0 && f.name == layoutIndexName {
		f.bases.remember(owner, data)
	}
	if flags&syscall.O_ACCMODE == syscall.O_RDONLY {
		if errno := slot.setBuffered(int64(len(data)), "open "+f.display()); errno != 0 {
			slot.release()
			return nil, 0, errno
		}
		return &layoutReader{data: data, slot: slot}, fuse.FOPEN_DIRECT_IO, 0
	}
	w := &layoutWriter{file: f, owner: owner, slot: slot}
	if flags&syscall.O_TRUNC == 0 {
		if errno := slot.setBuffered(int64(len(data)), "open "+f.display()); errno != 0 {
			slot.release()
			return nil, 0, errno
		}
		w.buf = append([]byte(nil), data...)
	} else {
		w.written = true
	}
	return w, fuse.FOPEN_DIRECT_IO, 0
}

// commit makes data the file's content, written by process p:
// oci-layout accepts only its own bytes (a tool writes it again when it
// opens a layout); index.json sets the namespace's refs, measured against
// what p read. now as for filesystem.notify.
func (f *layoutFile) commit(p process, data []byte, now bool) syscall.Errno {
	if f.name == ociLayoutName {
		if err := metadata.CheckOCILayout(data); err != nil {
			return toErrno("commit "+f.display(), errors.WithMessagef(err, "namespace %q", f.ns.name))
		}
		return 0
	}
	_, nsDir := f.Parent()
	return f.fsys.commitIndex("commit "+f.display(), p, f.ns, nsDir, &f.bases, data, now)
}

// commitIndex makes data, written to index.json by process p (a write,
// or a rename onto it), the set of refs of namespace ns, measured against
// what p last read (bases), and makes the kernel forget the names below
// nsDir's images/ that the rewrite may have changed without going
// through them: every name the tree knows there, and for each ref the
// index names the first component the tree does not know (the kernel may
// remember it as missing, cacheMiss); the kernel's kept listings of the
// directories on the changed refs' paths are dropped before it returns
// (forgetListings). now as for filesystem.notify.
func (fsys *filesystem) commitIndex(op string, p process, ns nsRef, nsDir *gofs.Inode, bases *layoutBases, data []byte, now bool) syscall.Errno {
	var base []byte
	if bases != nil {
		base = bases.of(p)
	}
	skipped, changed, err := fsys.db.Layout().PutIndex(ns.name, ns.id, base, data)
	if err != nil {
		return toErrno(op, errors.WithMessagef(err, "namespace %q", ns.name))
	}
	logSkippedRefs(op, skipped)
	if bases != nil {
		bases.remember(p, append([]byte(nil), data...))
	}
	refs, _ := metadata.ParseLayoutIndex(data) // it parsed in PutIndex
	if nsDir == nil {
		return 0
	}
	images := nsDir.GetChild(imagesName)
	if images == nil {
		return 0
	}
	forgetListings(images, changed)
	fsys.notify(now, func() {
		forgetNamesBelow(images)
		for ref := range refs {
			forgetMissingName(images, ref)
		}
		// A changed or dropped ref may have got its node after
		// forgetNamesBelow looked (a listing's batch, from the
		// snapshot before the write): name it anyway.
		for _, ref := range changed {
			forgetRefName(images, ref)
		}
	})
	return 0
}

// forgetMissingName sends an entry notification for the first component
// of path below n that the tree knows no node of.
func forgetMissingName(n *gofs.Inode, path string) {
	for _, name := range strings.Split(path, "/") {
		child := n.GetChild(name)
		if child == nil {
			n.NotifyEntry(name)
			return
		}
		n = child
	}
}

// forgetRefName sends an entry notification for path below n: for its
// first component the tree knows no node of, or else for its last
// component on its parent, whether or not the tree knows that node. The
// notification waits for the directory's lock, so it lands after any
// listing batch that is making the name's node.
func forgetRefName(n *gofs.Inode, path string) {
	names := strings.Split(path, "/")
	for i, name := range names {
		if i == len(names)-1 {
			n.NotifyEntry(name)
			return
		}
		child := n.GetChild(name)
		if child == nil {
			n.NotifyEntry(name)
			return
		}
		n = child
	}
}

// forgetNamesBelow sends an entry notification for every name the tree
// knows below directory n.
func forgetNamesBelow(n *gofs.Inode) {
	for name, child := range n.Children() {
		if child.IsDir() {
			forgetNamesBelow(child)
		}
		n.NotifyEntry(name)
	}
}

// layoutReader serves the bytes the file had at open.
type layoutReader struct {
	data []byte
	slot *handleSlot // nil for a writer's reads
}

var (
	_ = (gofs.FileReader)((*layoutReader)(nil))
	_ = (gofs.FileReleaser)((*layoutReader)(nil))
)

func (r *layoutReader) Release(ctx context.Context) syscall.Errno {
	r.slot.release()
	return 0
}

func (r *layoutReader) Read(ctx context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	if off < 0 {
		return nil, syscall.EINVAL
	}
	if off >= int64(len(r.data)) {
		return fuse.ReadResultData(nil), 0
	}
	end := min(int64(len(r.data)), off+int64(len(dest)))
	return readResult(r.data[off:end]), 0
}

// layoutWriter is a write handle of oci-layout or index.json: the bytes
// in memory (at most metadata.MaxManifestSize: EFBIG), committed at fsync
// and at the opener's close when written since the last commit.
type layoutWriter struct {
	file  *layoutFile
	owner process
	slot  *handleSlot

	mu      sync.Mutex
	buf     []byte
	written bool
}

var (
	_ = (gofs.FileReader)((*layoutWriter)(nil))
	_ = (gofs.FileWriter)((*layoutWriter)(nil))
	_ = (gofs.FileFlusher)((*layoutWriter)(nil))
	_ = (gofs.FileFsyncer)((*layoutWriter)(nil))
	_ = (gofs.FileReleaser)((*layoutWriter)(nil))
)

func (w *layoutWriter) size() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.buf)
}

func (w *layoutWriter) truncate(size int64) syscall.Errno {
	w.mu.Lock()
	defer w.mu.Unlock()
	if size > metadata.MaxManifestSize {
		return syscall.EFBIG
	}
	if size <= int64(len(w.buf)) {
		w.buf = w.buf[:size]
	} else {
		w.buf = append(w.buf, make([]byte, size-int64(len(w.buf)))...)
	}
	w.written = true
	return 0
}

func (w *layoutWriter) Read(ctx context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	w.mu.Lock()
	defer w.mu.Unlock()
	r := layoutReader{data: w.buf}
	res, errno := r.Read(ctx, dest, off)
	if errno == 0 {
		// The buffer may change once unlocked: hand out a copy.
		b, _ := res.Bytes(make([]byte, len(dest)))
		res = readResult(append([]byte(nil), b...))
	}
	return res, errno
}

func (w *layoutWriter) Write(ctx context.Context, data []byte, off int64) (uint32, syscall.Errno) {
	w.mu.Lock()
	defer w.mu.Unlock()
	end := off + int64(len(data))
	if off < 0 {
		return 0, syscall.EINVAL
	}
	if end > metadata.MaxManifestSize {
		return 0, syscall.EFBIG
	}
	next := w.buf
	if end > int64(len(next)) {
		next = append(next, make([]byte, end-int64(len(next)))...)
	}
	if w.file.name == ociLayoutName {
		// Fail the write itself (a shell does not check its close), and
		// keep nothing of it.
		next = append([]byte(nil), next...)
		copy(next[off:], data)
		if err := metadata.CheckOCILayoutPrefix(next); err != nil {
			return 0, toErrno("write "+w.file.display(), errors.WithMessagef(err, "namespace %q", w.file.ns.name))
		}
	} else {
		copy(next[off:], data)
	}
	if errno := w.slot.setBuffered(int64(cap(next)), "write "+w.file.display()); errno != 0 {
		return 0, errno
	}
	w.buf, w.written = next, true
	return uint32(len(data)), 0
}

// Flush commits the opener's close. A close with nothing written yet is
// a shell's `> file`, closing its copy of the descriptor before the
// command writes: the commit waits for the bytes (or the release).
func (w *layoutWriter) Flush(ctx context.Context) syscall.Errno {
	if closedByOther(ctx, w.owner) || w.size() == 0 {
		return 0
	}
	return w.commit(true)
}

// Release commits what no close committed.
func (w *layoutWriter) Release(ctx context.Context) syscall.Errno {
	defer w.slot.release()
	if errno := w.commit(false); errno != 0 {
		log.Printf("release %s: the bytes written were not kept", w.file.display())
	}
	return 0
}

func (w *layoutWriter) Fsync(ctx context.Context, flags uint32) syscall.Errno { return w.commit(false) }

func (w *layoutWriter) commit(now bool) syscall.Errno {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.written {
		return 0
	}
	// The namespace the file was opened in, not one made since under its
	// name (PutIndex checks the ID in its transaction too).
	if errno := w.file.fsys.enter(&w.file.ns); errno != 0 {
		return errno
	}
	if errno := w.file.commit(w.owner, w.buf, now); errno != 0 {
		return errno
	}
	w.written = false
	return 0
}

// lookupLayoutFile answers a lookup of oci-layout or index.json in the
// namespace's root.
func (d *namespaceDir) lookupLayoutFile(ctx context.Context, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	if d.fsys.scratch.isHidden(scratchKey{d.ns.id, name}) {
		return nil, syscall.ENOENT
	}
	f := newLayoutFile(d.fsys, d.ns, name)
	if errno := f.stat(&out.Attr); errno != 0 {
		return nil, errno
	}
	cacheName(out)
	if name == layoutIndexName {
		out.SetAttrTimeout(uncachedAttr)
	}
	return d.NewInode(ctx, f, fileAttr(f.ino())), 0
}

// layoutEntries lists the layout's files after images/ and blobs/ (rm -rf
// removes images before blobs; the layout files stay).
func (d *namespaceDir) layoutEntries() []fuse.DirEntry {
	var entries []fuse.DirEntry
	for _, name := range []string{ociLayoutName, layoutIndexName} {
		if !d.fsys.scratch.isHidden(scratchKey{d.ns.id, name}) {
			entries = append(entries, fuse.DirEntry{Name: name, Mode: syscall.S_IFREG, Ino: d.fsys.inodes.dir(d.ns.id, name)})
		}
	}
	return entries
}

// createLayoutFile answers a create of oci-layout or index.json (after an
// rm, or by a kernel that thought it absent): a write of it, from empty.
func (d *namespaceDir) createLayoutFile(ctx context.Context, name string, out *fuse.EntryOut) (*gofs.Inode, gofs.FileHandle, uint32, syscall.Errno) {
	f := newLayoutFile(d.fsys, d.ns, name)
	slot, errno := d.fsys.handles.acquire(ctx, "create "+f.display())
	if errno != 0 {
		return nil, nil, 0, errno
	}
	defer slot.releaseIfPanicking()
	d.fsys.scratch.unhide(scratchKey{d.ns.id, name})
	if errno := f.fill(&out.Attr, 0); errno != 0 {
		slot.release()
		return nil, nil, 0, errno
	}
	n := d.NewInode(ctx, f, fileAttr(f.ino()))
	// The node may be one the tree had already (same inode number).
	file, _ := n.Operations().(*layoutFile)
	if file == nil {
		file = f
	}
	return n, &layoutWriter{file: file, owner: processOf(ctx), slot: slot, written: true}, fuse.FOPEN_DIRECT_IO, 0
}

// Unlink: rm of oci-layout or index.json succeeds and changes nothing in
// the store (so that rm -rf of a namespace exits 0); the name is absent
// until it is written again or the next mount, so that tar -x, which
// removes a file it cannot create with O_EXCL and tries again, writes it
// then. A temporary file goes with its bytes.
func (d *namespaceDir) Unlink(ctx context.Context, name string) syscall.Errno {
	if errno := d.fsys.enter(&d.ns, name); errno != 0 {
		return errno
	}
	if isLayoutFile(name) {
		k := scratchKey{d.ns.id, name}
		if d.fsys.scratch.isHidden(k) {
			return syscall.ENOENT
		}
		d.fsys.scratch.hide(k)
		return 0
	}
	if t := d.fsys.temps.get(d.tempKey(name)); t != nil {
		d.fsys.temps.remove(t)
		return 0
	}
	if _, ok := d.fsys.scratch.get(scratchKey{d.ns.id, name}); ok || isFixedName(name) {
		return syscall.EISDIR
	}
	return syscall.ENOENT
}

// logSkippedRefs says which refs a write of index.json left as they were,
// their targets not being in the namespace.
func logSkippedRefs(op string, skipped []string) {
	if len(skipped) == 0 {
		return
	}
	op += ": left as they are, their targets not in the namespace: " + strings.Join(skipped, ", ")
	if strings.ContainsFunc(op, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		op = strconv.Quote(op)
	}
	log.Print(op)
}
