package fs

import (
	"context"
	"strings"
	"syscall"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/nsfs/nsfs/metadata"
	"golang.org/x/sys/unix"
)

// imageDir is images/ of a namespace (path "") or a directory below it: a
// '/' in a ref is a directory, implicit while a ref lies below it, explicit
// from mkdir until rmdir.
//
//	$ mkdir -p images/docker.io/library
//	$ cp redis.json images/docker.io/library/redis:latest
//	$ ls images/docker.io/library
//	redis:latest
//	$ mv images/docker.io/library/redis:latest images/redis
//	$ ln images/redis images/redis:7
//	$ mv images/redis ../../other/images/redis       # EXDEV: mv copies, then removes
//	$ rmdir images/docker.io
//	rmdir: failed to remove 'images/docker.io': Directory not empty
//
// Renaming a directory is EXDEV too (metadata has no directory rename), so
// mv falls back to copying the tree and removing the source.
type imageDir struct {
	gofs.Inode
	dirBase // with ns, the namespace
	noXattrs
	path string // below images/; fixed, since directories are never renamed

	listing kernelListing // the kernel's cache of its listing: kernel_listing.go
	// budgetSlot is the node's slot in the node budget (node_budget.go).
	budgetSlot int32
}

var (
	_ = (gofs.InodeEmbedder)((*imageDir)(nil))
	_ = (gofs.NodeStatfser)((*imageDir)(nil))
	_ = (gofs.NodeGetattrer)((*imageDir)(nil))
	_ = (gofs.NodeSetattrer)((*imageDir)(nil))
	_ = (gofs.NodeGetxattrer)((*imageDir)(nil))
	_ = (gofs.NodeSetxattrer)((*imageDir)(nil))
	_ = (gofs.NodeRemovexattrer)((*imageDir)(nil))
	_ = (gofs.NodeListxattrer)((*imageDir)(nil))
	_ = (gofs.NodeFsyncer)((*imageDir)(nil))
	_ = (gofs.NodeLookuper)((*imageDir)(nil))
	_ = (gofs.NodeOpendirHandler)((*imageDir)(nil)) // image_dir_handle.go
	_ = (gofs.NodeMkdirer)((*imageDir)(nil))
	_ = (gofs.NodeMknoder)((*imageDir)(nil))
	_ = (gofs.NodeLinker)((*imageDir)(nil))
	_ = (gofs.NodeSymlinker)((*imageDir)(nil))
	_ = (gofs.NodeCreater)((*imageDir)(nil))
	_ = (gofs.NodeUnlinker)((*imageDir)(nil))
	_ = (gofs.NodeRmdirer)((*imageDir)(nil))
	_ = (gofs.NodeRenamer)((*imageDir)(nil))
)

func newImageDir(fsys *filesystem, ns nsRef, path string) *imageDir {
	return &imageDir{dirBase: dirBase{nodeBase{fsys}, ns}, path: path, budgetSlot: noSlot}
}

// imageDirKey is the inode-table key of directory path below images/.
func imageDirKey(path string) string {
	if path == "" {
		return imagesKey
	}
	return imagesKey + "/" + path
}

// display names path below images/ for log lines.
func (d *imageDir) display(path string) string {
	return imagePath(d.ns, path)
}

func imagePath(ns nsRef, path string) string {
	return "ns/" + ns.name + "/images/" + path
}

// dirNode returns the node of directory path, a child of d: the one the
// tree already holds if it is that directory. The budget counts it.
func (d *imageDir) dirNode(ctx context.Context, path string, out *fuse.EntryOut) *gofs.Inode {
	d.fsys.fillStoredDir(&out.Attr, d.ns, metadata.ImagesDir(path))
	cacheName(out)
	ino := d.fsys.inodes.dir(d.ns.id, imageDirKey(path))
	if ch := d.GetChild(path[strings.LastIndexByte(path, '/')+1:]); ch != nil && ch.StableAttr().Ino == ino {
		if sub, ok := ch.Operations().(*imageDir); ok {
			d.fsys.nodes.used(sub)
			return ch
		}
	}
	sub := newImageDir(d.fsys, d.ns, path)
	n := d.NewInode(ctx, sub, dirAttr(ino))
	d.fsys.nodes.used(sub)
	return n
}

// imageNode returns the node of img, named name in d: the one the tree
// already holds if it is that image, so that its ref stays in step.
func (d *imageDir) imageNode(ctx context.Context, name string, img *metadata.Image, out *fuse.EntryOut) *gofs.Inode {
	fillImage(d.fsys, d.ns, &out.Attr, img)
	cacheName(out)
	if ch := d.GetChild(name); ch != nil && ch.StableAttr().Ino == recordIno(img.ID) {
		if f, ok := ch.Operations().(*imageFile); ok {
			f.setRef(img.Name)
			d.fsys.nodes.used(f)
			return ch
		}
	}
	return d.newImageNode(ctx, newImageFile(d.fsys, d.ns, img.Name, img.ID, false))
}

func (d *imageDir) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	if errno := d.fsys.enter(&d.ns, name); errno != 0 {
		return nil, errno
	}
	path := joinPath(d.path, name)
	e, err := d.fsys.db.Images().Lookup(d.ns.name, path)
	if err != nil {
		if child := d.childImage(name); metadata.IsNotFound(err) && child != nil && child.isPending() {
			// Being created: it is there for as long as its writer has it
			// open, also once the kernel's entry expired.
			return child.pendingNode(ctx, out)
		}
		if errno := lookupErrno("lookup "+d.display(path), err); errno != syscall.ENOENT {
			return nil, errno
		}
		return nil, cacheMiss(out) // negative.go: made only through the kernel
	}
	if e.IsDir {
		return d.dirNode(ctx, path, out), 0
	}
	return d.imageNode(ctx, name, e.Image, out), 0
}

func (d *imageDir) Getattr(ctx context.Context, f gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	if errno := d.fsys.enter(&d.ns); errno != 0 {
		return errno
	}
	// An implicit directory goes when its last image does.
	if d.path != "" {
		if _, err := d.fsys.db.Images().Lookup(d.ns.name, d.path); err != nil {
			return lookupErrno("getattr "+d.display(d.path), err)
		}
	}
	d.fsys.fillStoredDir(&out.Attr, d.ns, metadata.ImagesDir(d.path))
	return 0
}

func (d *imageDir) Setattr(ctx context.Context, f gofs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	if errno := d.fsys.enter(&d.ns); errno != 0 {
		return errno
	}
	return setattrStoredDir(d.fsys, in, out, d, d.ns.name, metadata.ImagesDir(d.path), d.display(d.path))
}

func (d *imageDir) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	if errno := d.fsys.enter(&d.ns, name); errno != 0 {
		return nil, errno
	}
	path := joinPath(d.path, name)
	if err := d.fsys.db.Images().MakeDir(d.ns.name, path); err != nil {
		return nil, toErrno("mkdir "+d.display(path), err)
	}
	return d.dirNode(ctx, path, out), 0
}

func (d *imageDir) Rmdir(ctx context.Context, name string) syscall.Errno {
	if errno := d.fsys.enter(&d.ns, name); errno != 0 {
		return errno
	}
	path := joinPath(d.path, name)
	if err := d.fsys.db.Images().RemoveDir(d.ns.name, path); err != nil {
		return toErrno("rmdir "+d.display(path), err)
	}
	d.fsys.inodes.forget(d.ns.id, imageDirKey(path))
	return 0
}

// childImage is the image node the tree holds under name, if any.
func (d *imageDir) childImage(name string) *imageFile {
	if ch := d.GetChild(name); ch != nil {
		f, _ := ch.Operations().(*imageFile)
		return f
	}
	return nil
}

// Unlink deletes an image; metadata then releases the blobs only it held.
// Unlinking an image still being created discards it.
func (d *imageDir) Unlink(ctx context.Context, name string) syscall.Errno {
	if errno := d.fsys.enter(&d.ns, name); errno != 0 {
		return errno
	}
	path := joinPath(d.path, name)
	child := d.childImage(name)
	if err := d.fsys.db.Images().Delete(d.ns.name, path); err != nil {
		if metadata.IsNotFound(err) && child != nil && child.isPending() {
			child.detach()
			return 0
		}
		return toErrno("rm "+d.display(path), err)
	}
	if child != nil {
		child.detach()
	}
	return 0
}

// Rename renames an image within its namespace, replacing the target
// atomically. Across namespaces, and for directories, metadata answers
// ErrCrossNamespace (EXDEV), so that mv copies and then removes.
// RENAME_NOREPLACE is checked in the transaction that renames;
// RENAME_EXCHANGE is EINVAL.
func (d *imageDir) Rename(ctx context.Context, name string, newParent gofs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	if errno := d.fsys.enter(&d.ns, name, newName); errno != 0 {
		return errno
	}
	if flags&^unix.RENAME_NOREPLACE != 0 {
		return syscall.EINVAL
	}
	dst, ok := newParent.(*imageDir)
	if !ok {
		return syscall.EPERM
	}
	if errno := d.fsys.enter(&dst.ns); errno != 0 {
		return errno
	}
	noReplace := flags&unix.RENAME_NOREPLACE != 0
	from, to := joinPath(d.path, name), joinPath(dst.path, newName)
	op := "mv " + d.display(from) + " " + dst.display(to)
	src := d.childImage(name)
	if src != nil {
		// A commit through src waits until both the store and src name
		// the image by its new ref.
		src.nameMu.Lock()
		defer src.nameMu.Unlock()
	}
	var pending bool
	var err error
	if src != nil && src.isPending() {
		// Metadata finds out, in the transaction that renames, whether the
		// store has the image yet; if not, it frees the new name, under
		// which the first commit creates it.
		pending, err = d.fsys.db.Images().RenamePending(d.ns.name, from, dst.ns.name, to, noReplace)
	} else {
		err = d.fsys.db.Images().Rename(d.ns.name, from, dst.ns.name, to, noReplace)
	}
	if err != nil {
		return toErrno(op, err)
	}
	if replaced := dst.childImage(newName); replaced != nil && replaced != src {
		replaced.detach()
	}
	if pending || src != nil && src.currentRef() == from {
		src.setRef(to)
	}
	return 0
}

// Link gives the image a second ref with the same target and labels
// (`ctr images tag`), as a new image with its own inode.
func (d *imageDir) Link(ctx context.Context, target gofs.InodeEmbedder, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	if errno := d.fsys.enter(&d.ns, name); errno != 0 {
		return nil, errno
	}
	src, ok := target.(*imageFile)
	if !ok {
		return nil, syscall.EPERM
	}
	if errno := d.fsys.enter(&src.ns); errno != 0 {
		return nil, errno
	}
	from, to := src.currentRef(), joinPath(d.path, name)
	if from == "" {
		return nil, syscall.ENOENT
	}
	img, err := d.fsys.db.Images().Link(src.ns.name, from, d.ns.name, to)
	if err != nil {
		return nil, toErrno("ln "+imagePath(src.ns, from)+" "+d.display(to), err)
	}
	fillImage(d.fsys, d.ns, &out.Attr, &img)
	cacheName(out)
	return d.newImageNode(ctx, newImageFile(d.fsys, d.ns, to, img.ID, false)), 0
}

// Create opens an image for writing: an existing one (unless O_EXCL), or a
// new one, which exists only for its writer until the first commit.
func (d *imageDir) Create(ctx context.Context, name string, flags uint32, mode uint32, out *fuse.EntryOut) (*gofs.Inode, gofs.FileHandle, uint32, syscall.Errno) {
	if errno := d.fsys.enter(&d.ns, name); errno != 0 {
		return nil, nil, 0, errno
	}
	path := joinPath(d.path, name)
	e, err := d.fsys.db.Images().Lookup(d.ns.name, path)
	switch {
	case err == nil && e.IsDir:
		return nil, nil, 0, syscall.EISDIR
	case flags&syscall.O_APPEND != 0 && (err == nil || metadata.IsNotFound(err)):
		return nil, nil, 0, toErrno("create "+d.display(path), metadata.ImageAppend(d.ns.name, path))
	case err == nil && flags&syscall.O_EXCL != 0:
		return nil, nil, 0, syscall.EEXIST
	case err == nil:
		node := d.imageNode(ctx, name, e.Image, out)
		fh, fuseFlags, errno := node.Operations().(*imageFile).Open(ctx, flags)
		if errno != 0 {
			return nil, nil, 0, errno
		}
		return node, fh, fuseFlags, 0
	case !metadata.IsNotFound(err):
		return nil, nil, 0, toErrno("create "+d.display(path), err)
	}
	// The image's ID now, so that its inode is the same before and after
	// its first commit (one node, which renames and unlinks keep current).
	slot, errno := d.fsys.handles.acquire(ctx, "create "+d.display(path))
	if errno != 0 {
		return nil, nil, 0, errno
	}
	defer slot.releaseIfPanicking()
	id, err := d.fsys.db.Images().ReserveID()
	if err != nil {
		slot.release()
		return nil, nil, 0, toErrno("create "+d.display(path), err)
	}
	f := newImageFile(d.fsys, d.ns, path, id, true)
	w := f.newWriter(ctx, slot, nil, true)
	created := f.creationTime()
	d.fsys.fillFile(&out.Attr, d.ns, imagePerm, 0, created, created)
	cacheName(out)
	return d.newImageNode(ctx, f), w, 0, 0
}

// fillImage fills the attributes of an image file.
func fillImage(fsys *filesystem, ns nsRef, a *fuse.Attr, img *metadata.Image) {
	fsys.fillFile(a, ns, imagePerm, img.Target.Size, img.UpdatedAt, img.ChangedAt)
}
