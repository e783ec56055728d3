package fs

import (
	"context"
	"log"
	"syscall"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/nsfs/nsfs/metadata"
)

// rootfsName is the namespace's read-only view of its images' files.
const (
	rootfsName = "rootfs"
	rootfsKey  = "rootfs"
)

// readOnly is embedded in every node below rootfs/: each change is
// EROFS, once the gate let the request through.
type readOnly struct {
	nodeBase
	ns nsRef
}

var (
	_ = (gofs.NodeMkdirer)((*readOnly)(nil))
	_ = (gofs.NodeRmdirer)((*readOnly)(nil))
	_ = (gofs.NodeUnlinker)((*readOnly)(nil))
	_ = (gofs.NodeRenamer)((*readOnly)(nil))
	_ = (gofs.NodeLinker)((*readOnly)(nil))
	_ = (gofs.NodeSymlinker)((*readOnly)(nil))
	_ = (gofs.NodeCreater)((*readOnly)(nil))
	_ = (gofs.NodeMknoder)((*readOnly)(nil))
	_ = (gofs.NodeSetxattrer)((*readOnly)(nil))
	_ = (gofs.NodeRemovexattrer)((*readOnly)(nil))
	_ = (gofs.NodeFsyncer)((*readOnly)(nil))
)

func (r *readOnly) erofs(names ...string) syscall.Errno {
	if errno := r.fsys.enter(&r.ns, names...); errno != 0 {
		return errno
	}
	return syscall.EROFS
}

func (r *readOnly) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	return nil, r.erofs(name)
}

func (r *readOnly) Rmdir(ctx context.Context, name string) syscall.Errno { return r.erofs(name) }

func (r *readOnly) Unlink(ctx context.Context, name string) syscall.Errno { return r.erofs(name) }

func (r *readOnly) Rename(ctx context.Context, name string, newParent gofs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	return r.erofs(name, newName)
}

func (r *readOnly) Link(ctx context.Context, target gofs.InodeEmbedder, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	return nil, r.erofs(name)
}

func (r *readOnly) Symlink(ctx context.Context, target, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	return nil, r.erofs(name)
}

func (r *readOnly) Create(ctx context.Context, name string, flags uint32, mode uint32, out *fuse.EntryOut) (*gofs.Inode, gofs.FileHandle, uint32, syscall.Errno) {
	return nil, nil, 0, r.erofs(name)
}

func (r *readOnly) Mknod(ctx context.Context, name string, mode uint32, dev uint32, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	return nil, r.erofs(name)
}

func (r *readOnly) Setxattr(ctx context.Context, attr string, data []byte, flags uint32) syscall.Errno {
	return r.erofs()
}

func (r *readOnly) Removexattr(ctx context.Context, attr string) syscall.Errno { return r.erofs() }

// Fsync succeeds: nothing below rootfs/ is ever dirty.
func (*readOnly) Fsync(ctx context.Context, f gofs.FileHandle, flags uint32) syscall.Errno { return 0 }

// rootfsDir is rootfs/ of a namespace (path "") or a ref prefix below it:
// the same directories as images/, with each image a directory of its
// files.
//
//	$ ls rootfs/docker.io/library
//	redis:latest
//	$ cat rootfs/docker.io/library/redis:latest/etc/os-release
//	PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
//	...
//	$ touch rootfs/docker.io/library/x
//	touch: cannot touch 'rootfs/docker.io/library/x': Read-only file system
type rootfsDir struct {
	gofs.Inode
	readOnly
	path string // below rootfs/, as below images/
}

var (
	_ = (gofs.InodeEmbedder)((*rootfsDir)(nil))
	_ = (gofs.NodeStatfser)((*rootfsDir)(nil))
	_ = (gofs.NodeGetattrer)((*rootfsDir)(nil))
	_ = (gofs.NodeSetattrer)((*rootfsDir)(nil))
	_ = (gofs.NodeGetxattrer)((*rootfsDir)(nil))
	_ = (gofs.NodeListxattrer)((*rootfsDir)(nil))
	_ = (gofs.NodeLookuper)((*rootfsDir)(nil))
	_ = (gofs.NodeReaddirer)((*rootfsDir)(nil))
	_ = (gofs.NodeOpendirHandler)((*rootfsDir)(nil)) // names_only_dir.go
)

func newRootfsDir(fsys *filesystem, ns nsRef, path string) *rootfsDir {
	return &rootfsDir{readOnly: readOnly{nodeBase{fsys}, ns}, path: path}
}

func rootfsDirKey(path string) string {
	if path == "" {
		return rootfsKey
	}
	return rootfsKey + "/" + path
}

func (d *rootfsDir) display(path string) string { return "ns/" + d.ns.name + "/rootfs/" + path }

func (d *rootfsDir) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	if errno := d.fsys.enter(&d.ns, name); errno != 0 {
		return nil, errno
	}
	path := joinPath(d.path, name)
	e, err := d.fsys.db.Images().Lookup(d.ns.name, path)
	if err != nil {
		return nil, lookupErrno("lookup "+d.display(path), err)
	}
	if e.IsDir {
		d.fsys.fillStoredDir(&out.Attr, d.ns, metadata.ImagesDir(path)) // as its images/ twin
		cacheName(out)
		ino := d.fsys.inodes.dir(d.ns.id, rootfsDirKey(path))
		return d.NewInode(ctx, newRootfsDir(d.fsys, d.ns, path), dirAttr(ino)), 0
	}
	if err := d.fsys.rootfsShown(ctx, d.ns, *e.Image); err != nil {
		log.Printf("lookup %s: not shown: %v", d.display(path), err)
		return nil, syscall.ENOENT
	}
	return d.imageRoot(ctx, path, out)
}

// imageRoot is the root of image ref's files. An image rootfsShown
// refuses has no entry (ENOENT, and the log says why); one whose files
// still cannot be shown (a layer that climbs out of its root, a tar cut
// short) is a directory that says why (rootfsNotShown).
func (d *rootfsDir) imageRoot(ctx context.Context, ref string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	tree, img, err := d.fsys.imageTree(ctx, d.ns, ref)
	if err != nil {
		return d.unavailableRoot(ctx, ref, err, out) // rootfs_not_shown.go
	}
	n := &rootfsNode{node: tree.Root, rootfsImage: &rootfsImage{readOnly: d.readOnly, tree: tree,
		image: img.ID, target: img.Target.Digest, imagePath: d.display(ref)}}
	n.fill(&out.Attr)
	cacheName(out)
	return d.NewInode(ctx, n, n.stableAttr()), 0
}

func (d *rootfsDir) Readdir(ctx context.Context) (gofs.DirStream, syscall.Errno) {
	if errno := d.fsys.enter(&d.ns); errno != 0 {
		return nil, errno
	}
	list, err := d.fsys.db.Images().ReadDir(d.ns.name, d.path)
	if err != nil {
		return nil, toErrno("readdir "+d.display(d.path), err)
	}
	entries := dirEntries(d.EmbeddedInode(), len(list))
	for _, e := range list {
		if e.IsDir {
			ino := d.fsys.inodes.dir(d.ns.id, rootfsDirKey(e.Path))
			entries = append(entries, fuse.DirEntry{Name: e.Name, Mode: syscall.S_IFDIR, Ino: ino})
		} else if d.fsys.rootfsShown(ctx, d.ns, *e.Image) == nil {
			ino := rootfsIno(d.ns.id, e.Image.ID, e.Image.Target.Digest, 1)
			entries = append(entries, fuse.DirEntry{Name: e.Name, Mode: syscall.S_IFDIR, Ino: ino})
		}
	}
	return gofs.NewListDirStream(entries), 0
}

func (d *rootfsDir) Getattr(ctx context.Context, f gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	if errno := d.fsys.enter(&d.ns); errno != 0 {
		return errno
	}
	if d.path != "" {
		if _, err := d.fsys.db.Images().Lookup(d.ns.name, d.path); err != nil {
			return lookupErrno("getattr "+d.display(d.path), err)
		}
	}
	d.fsys.fillStoredDir(&out.Attr, d.ns, metadata.ImagesDir(d.path))
	return 0
}

func (d *rootfsDir) Setattr(ctx context.Context, f gofs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	return d.erofs()
}

func (d *rootfsDir) Getxattr(ctx context.Context, attr string, dest []byte) (uint32, syscall.Errno) {
	return noXattrs{}.Getxattr(ctx, attr, dest)
}

func (d *rootfsDir) Listxattr(ctx context.Context, dest []byte) (uint32, syscall.Errno) {
	return 0, 0
}
