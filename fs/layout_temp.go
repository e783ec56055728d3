package fs

import (
	"context"
	"sync"
	"syscall"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/nsfs/nsfs/metadata"
	"github.com/pkg/errors"
	"golang.org/x/sys/unix"
)

// Tools that write an OCI layout write each file under a name of their
// own and rename it into place: skopeo creates oci-put-blob… in the
// layout's root, oras-go and umoci make a scratch directory there
// (ingest/, .umoci-…/) and write in it. In a namespace's root, a file of
// any name that is not the layout's is such a temporary ingest
// (temp_ingest.go), and so is any file in a scratch directory. A rename
// to blobs/sha256/<hex> commits it as that blob, verified; a rename onto
// index.json sets the namespace's refs as a write of index.json does;
// onto oci-layout it must hold the layout's bytes. Neither temporary
// files nor scratch directories are records of the store: they never
// keep rmdir of the namespace from succeeding, gc collects the bytes of
// those left behind after the grace period, and a remount forgets them.
//
//	$ skopeo copy docker://127.0.0.1:5000/app:v1 oci:/mnt/ns/dev:app:v1
//	$ ls /mnt/ns/dev/images
//	app:v1
//	$ mkdir /mnt/ns/dev/ingest && cp layer.tar /mnt/ns/dev/ingest/x
//	$ mv /mnt/ns/dev/ingest/x /mnt/ns/dev/blobs/sha256/$(sha256sum < layer.tar | cut -d' ' -f1)
//	$ rmdir /mnt/ns/dev/ingest

// rootTempDir is the directory key (tempKey.dir) of the namespace's root.
const rootTempDir = ""

// scratchDirs are the mount's scratch directories, by namespace and name,
// and the layout files removed by rm (layout_files.go, Unlink).
type scratchDirs struct {
	mu     sync.Mutex
	byName map[scratchKey]time.Time // when it was made
	hidden map[scratchKey]bool      // oci-layout or index.json, removed
}

// hide makes a layout file absent until it is created again.
func (r *scratchDirs) hide(k scratchKey) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.hidden == nil {
		r.hidden = map[scratchKey]bool{}
	}
	r.hidden[k] = true
}

func (r *scratchDirs) unhide(k scratchKey) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.hidden, k)
}

func (r *scratchDirs) isHidden(k scratchKey) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.hidden[k]
}

type scratchKey struct {
	ns   uint64
	name string
}

func (r *scratchDirs) get(k scratchKey) (time.Time, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	t, ok := r.byName[k]
	return t, ok
}

// add records k; false if it exists.
func (r *scratchDirs) add(k scratchKey) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.byName == nil {
		r.byName = map[scratchKey]time.Time{}
	}
	if _, ok := r.byName[k]; ok {
		return false
	}
	r.byName[k] = time.Now()
	return true
}

func (r *scratchDirs) remove(k scratchKey) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.byName, k)
}

// removeNamespace forgets the scratch directories and removed layout
// files of a deleted namespace (IDs are never reused, so they could never
// be reached again, only kept in memory until a remount).
func (r *scratchDirs) removeNamespace(ns uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for k := range r.byName {
		if k.ns == ns {
			delete(r.byName, k)
		}
	}
	for k := range r.hidden {
		if k.ns == ns {
			delete(r.hidden, k)
		}
	}
}

func (r *scratchDirs) list(ns uint64) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var names []string
	for k := range r.byName {
		if k.ns == ns {
			names = append(names, k.name)
		}
	}
	return names
}

// isFixedName says whether name is one of the namespace root's own
// entries, which no temporary file or scratch directory can take.
func isFixedName(name string) bool {
	return name == imagesName || name == blobsName || name == rootfsName || isLayoutFile(name)
}

func (d *namespaceDir) tempKey(name string) tempKey { return tempKey{d.ns.id, rootTempDir, name} }

// lookupTempOrScratch answers a lookup of a name the namespace root does
// not fix: a temporary file or a scratch directory.
func (d *namespaceDir) lookupTempOrScratch(ctx context.Context, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	if t := d.fsys.temps.get(d.tempKey(name)); t != nil {
		t.fill(d.fsys, &out.Attr)
		return t.node(ctx, d.EmbeddedInode(), d.fsys), 0
	}
	if made, ok := d.fsys.scratch.get(scratchKey{d.ns.id, name}); ok {
		s := &scratchDir{dirBase: d.dirBase, name: name, made: made}
		d.fsys.fillDir(&out.Attr, d.ns, made, made)
		out.Attr.Ino = s.ino()
		return d.NewInode(ctx, s, dirAttr(s.ino())), 0
	}
	return nil, syscall.ENOENT
}

// tempAndScratchEntries lists the root's temporary files and scratch
// directories.
func (d *namespaceDir) tempAndScratchEntries() []fuse.DirEntry {
	var entries []fuse.DirEntry
	for _, t := range d.fsys.temps.list(d.ns.id, rootTempDir) {
		t.mu.Lock()
		name := t.key.name
		t.mu.Unlock()
		entries = append(entries, fuse.DirEntry{Name: name, Mode: syscall.S_IFREG, Ino: t.ino})
	}
	for _, name := range d.fsys.scratch.list(d.ns.id) {
		s := scratchDir{dirBase: d.dirBase, name: name}
		entries = append(entries, fuse.DirEntry{Name: name, Mode: syscall.S_IFDIR, Ino: s.ino()})
	}
	return entries
}

// Create in the namespace's root makes a temporary file (one of that
// name is replaced; EEXIST with O_EXCL); the layout's own files and
// directories exist already.
func (d *namespaceDir) Create(ctx context.Context, name string, flags uint32, mode uint32, out *fuse.EntryOut) (*gofs.Inode, gofs.FileHandle, uint32, syscall.Errno) {
	if errno := d.fsys.enter(&d.ns, name); errno != 0 {
		return nil, nil, 0, errno
	}
	if isLayoutFile(name) {
		return d.createLayoutFile(ctx, name, out)
	}
	if isFixedName(name) {
		return nil, nil, 0, syscall.EEXIST
	}
	if _, ok := d.fsys.scratch.get(scratchKey{d.ns.id, name}); ok {
		return nil, nil, 0, syscall.EISDIR
	}
	return createTemp(ctx, d.fsys, d.EmbeddedInode(), d.ns, d.tempKey(name), flags, "ns/"+d.ns.name+"/"+name, out)
}

// createTemp starts temporary file k in directory dir.
func createTemp(ctx context.Context, fsys *filesystem, dir *gofs.Inode, ns nsRef, k tempKey, flags uint32, display string, out *fuse.EntryOut) (*gofs.Inode, gofs.FileHandle, uint32, syscall.Errno) {
	if flags&syscall.O_EXCL != 0 && fsys.temps.get(k) != nil {
		return nil, nil, 0, syscall.EEXIST
	}
	t, errno := fsys.newTempIngest(ctx, ns, k.dir, k.name, display)
	if errno != 0 {
		return nil, nil, 0, errno
	}
	t.fill(fsys, &out.Attr)
	return t.node(ctx, dir, fsys), &tempHandle{t: t}, fuse.FOPEN_DIRECT_IO, 0
}

// mkdirScratch makes a scratch directory.
func (d *namespaceDir) mkdirScratch(ctx context.Context, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	if d.fsys.temps.get(d.tempKey(name)) != nil {
		return nil, syscall.EEXIST
	}
	if !d.fsys.scratch.add(scratchKey{d.ns.id, name}) {
		return nil, syscall.EEXIST
	}
	return d.lookupTempOrScratch(ctx, name, out)
}

// rmdirScratch removes a scratch directory once it holds no temporary
// file.
func (d *namespaceDir) rmdirScratch(name string) syscall.Errno {
	k := scratchKey{d.ns.id, name}
	if _, ok := d.fsys.scratch.get(k); !ok {
		if d.fsys.temps.get(d.tempKey(name)) != nil {
			return syscall.ENOTDIR
		}
		return syscall.ENOENT
	}
	if len(d.fsys.temps.list(d.ns.id, name)) > 0 {
		return syscall.ENOTEMPTY
	}
	d.fsys.scratch.remove(k)
	d.fsys.inodes.forget(d.ns.id, scratchInoKey(name))
	return 0
}

// Rename in the namespace's root moves a temporary file (renameTemp);
// nothing else there is renamed (EPERM).
func (d *namespaceDir) Rename(ctx context.Context, name string, newParent gofs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	if errno := d.fsys.enter(&d.ns, name, newName); errno != 0 {
		return errno
	}
	t := d.fsys.temps.get(d.tempKey(name))
	if t == nil {
		return d.refuse("rename", name, newName)
	}
	return d.fsys.renameTemp(processOf(ctx), d.ns, t, newParent, newName, flags)
}

// renameTemp renames temporary file t of namespace ns to newName in
// newParent: in blobs/sha256, to <hex> it commits the blob (EBADMSG when
// the bytes are another's: nothing changes, t stays); onto index.json it
// sets the namespace's refs (EINVAL, t stays); onto oci-layout it must
// hold the layout's bytes; to any other name in the root, a scratch
// directory or blobs/sha256 it is renamed. Other directories and other
// namespaces are EXDEV; RENAME_EXCHANGE is EINVAL.
func (fsys *filesystem) renameTemp(p process, ns nsRef, t *tempIngest, newParent gofs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	if flags&^unix.RENAME_NOREPLACE != 0 {
		return syscall.EINVAL
	}
	noReplace := flags&unix.RENAME_NOREPLACE != 0
	switch dst := newParent.(type) {
	case *sha256Dir:
		if dst.ns.id != ns.id {
			return syscall.EXDEV
		}
		if !isBlobName(newName) {
			return fsys.temps.move(t, dst.tempKey(newName), noReplace)
		}
		dg := blobDigest(newName)
		if noReplace {
			if _, err := fsys.db.Content().Stat(ns.name, dg); err == nil {
				return syscall.EEXIST
			}
		}
		gone, err := t.commitAs(dg)
		if gone {
			fsys.temps.remove(t)
		}
		if err != nil {
			return toErrno("commit "+t.display()+" as "+dst.display(newName)+" (rename)", err)
		}
		return 0
	case *namespaceDir:
		if dst.ns.id != ns.id {
			return syscall.EXDEV
		}
		switch {
		case isLayoutFile(newName):
			if noReplace {
				return syscall.EEXIST
			}
			return fsys.renameOntoLayoutFile(p, ns, t, dst, newName)
		case isFixedName(newName):
			return syscall.EISDIR
		}
		if _, ok := fsys.scratch.get(scratchKey{ns.id, newName}); ok {
			return syscall.EISDIR
		}
		return fsys.temps.move(t, dst.tempKey(newName), noReplace)
	case *scratchDir:
		if dst.ns.id != ns.id {
			return syscall.EXDEV
		}
		return fsys.temps.move(t, dst.tempKey(newName), noReplace)
	}
	return syscall.EXDEV
}

// renameOntoLayoutFile is a temporary file renamed onto index.json or
// oci-layout: its bytes are read back and committed as a write of the
// file would be; the temporary file goes once they are.
func (fsys *filesystem) renameOntoLayoutFile(p process, ns nsRef, t *tempIngest, d *namespaceDir, name string) syscall.Errno {
	op := "commit " + t.display() + " as ns/" + ns.name + "/" + name + " (rename)"
	data, err := t.writer().Written()
	if err != nil {
		return toErrno(op, err)
	}
	if name == ociLayoutName {
		if err := metadata.CheckOCILayout(data); err != nil {
			return toErrno(op, errors.WithMessagef(err, "namespace %q", ns.name))
		}
	} else {
		// Measured against what the renaming process read, when the
		// node of index.json remembers it.
		var bases *layoutBases
		if n := d.GetChild(layoutIndexName); n != nil {
			if f, ok := n.Operations().(*layoutFile); ok {
				bases = &f.bases
			}
		}
		if errno := fsys.commitIndex(op, p, ns, d.EmbeddedInode(), bases, data, false); errno != 0 {
			return errno
		}
	}
	// The file takes the temporary file's time, as a rename keeps it
	// (rsync sets it before the rename).
	t.mu.Lock()
	mtime := t.mtime
	t.mu.Unlock()
	if err := fsys.db.SetDirModified(ns.name, name, mtime); err != nil {
		toErrno(op, err) // logged; the bytes are committed
	}
	fsys.scratch.unhide(scratchKey{ns.id, name})
	fsys.temps.remove(t)
	return 0
}
