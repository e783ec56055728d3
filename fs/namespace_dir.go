package fs

import (
	"context"
	"syscall"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/nsfs/nsfs/metadata"
)

// namespaceDir is ns/<name>: images/ then blobs/ (rm -rf relies on the
// order: removing the images first releases their blobs), the OCI layout
// files, rootfs/ (looked up, never listed), and the namespace's labels as
// user.* xattrs.
//
//	$ ls /mnt/ns/dev
//	blobs  images  index.json  oci-layout
//	$ ls /mnt/ns/dev/rootfs
//	app:v1
//	$ setfattr -n user.containerd.io/namespace.shareable -v true /mnt/ns/dev
//	$ rm -rf /mnt/ns/dev
type namespaceDir struct {
	gofs.Inode
	dirBase // with ns, the namespace
	labelXattrs
}

var (
	_ = (gofs.InodeEmbedder)((*namespaceDir)(nil))
	_ = (gofs.NodeStatfser)((*namespaceDir)(nil))
	_ = (gofs.NodeGetattrer)((*namespaceDir)(nil))
	_ = (gofs.NodeSetattrer)((*namespaceDir)(nil))
	_ = (gofs.NodeGetxattrer)((*namespaceDir)(nil))
	_ = (gofs.NodeSetxattrer)((*namespaceDir)(nil))
	_ = (gofs.NodeRemovexattrer)((*namespaceDir)(nil))
	_ = (gofs.NodeListxattrer)((*namespaceDir)(nil))
	_ = (gofs.NodeFsyncer)((*namespaceDir)(nil))
	_ = (gofs.NodeLookuper)((*namespaceDir)(nil))
	_ = (gofs.NodeReaddirer)((*namespaceDir)(nil))
	_ = (gofs.NodeMkdirer)((*namespaceDir)(nil))
	_ = (gofs.NodeMknoder)((*namespaceDir)(nil))
	_ = (gofs.NodeLinker)((*namespaceDir)(nil))
	_ = (gofs.NodeSymlinker)((*namespaceDir)(nil))
	_ = (gofs.NodeCreater)((*namespaceDir)(nil))
	_ = (gofs.NodeUnlinker)((*namespaceDir)(nil))
	_ = (gofs.NodeRmdirer)((*namespaceDir)(nil))
	_ = (gofs.NodeRenamer)((*namespaceDir)(nil))
)

// Names and inode-table keys of the fixed directories of a namespace.
const (
	imagesName = "images"
	blobsName  = "blobs"
	sha256Name = "sha256"

	imagesKey = "images"
	blobsKey  = "blobs"
	sha256Key = "blobs/sha256"
)

func newNamespaceDir(fsys *filesystem, ns nsRef) *namespaceDir {
	d := &namespaceDir{dirBase: dirBase{nodeBase{fsys}, ns}}
	d.labelXattrs = labelXattrs{db: fsys.db, subject: d}
	return d
}

func (d *namespaceDir) labelObject() (metadata.Object, string, syscall.Errno) {
	if errno := d.fsys.enter(&d.ns); errno != 0 {
		return metadata.Object{}, "", errno
	}
	return metadata.Object{Namespace: d.ns.name}, "ns/" + d.ns.name, 0
}

func (d *namespaceDir) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	if errno := d.fsys.enter(&d.ns, name); errno != 0 {
		return nil, errno
	}
	switch name {
	case imagesName:
		d.fsys.fillStoredDir(&out.Attr, d.ns, metadata.ImagesDir(""))
		cacheName(out)
		return d.NewInode(ctx, newImageDir(d.fsys, d.ns, ""), dirAttr(d.fsys.inodes.dir(d.ns.id, imagesKey))), 0
	case blobsName:
		d.fsys.fillStoredDir(&out.Attr, d.ns, metadata.DirBlobsRoot)
		cacheName(out)
		return d.NewInode(ctx, &blobsDir{fixedDir{dirBase: d.dirBase, timesKey: metadata.DirBlobsRoot}}, dirAttr(d.fsys.inodes.dir(d.ns.id, blobsKey))), 0
	case ociLayoutName, layoutIndexName:
		return d.lookupLayoutFile(ctx, name, out)
	case rootfsName:
		d.fsys.fillStoredDir(&out.Attr, d.ns, metadata.ImagesDir("")) // it lists the images
		cacheName(out)
		return d.NewInode(ctx, newRootfsDir(d.fsys, d.ns, ""), dirAttr(d.fsys.inodes.dir(d.ns.id, rootfsKey))), 0
	}
	return d.lookupTempOrScratch(ctx, name, out)
}

func (d *namespaceDir) Readdir(ctx context.Context) (gofs.DirStream, syscall.Errno) {
	if errno := d.fsys.enter(&d.ns); errno != 0 {
		return nil, errno
	}
	// rootfs/ is there for every lookup but not listed, as a snapshot
	// directory is not: cp -a, rsync, tar, du and find of a namespace
	// would otherwise walk (and try to restore) every image's files.
	entries := dirEntries(d.EmbeddedInode(), 4)
	entries = append(entries,
		fuse.DirEntry{Name: imagesName, Mode: syscall.S_IFDIR, Ino: d.fsys.inodes.dir(d.ns.id, imagesKey)},
		fuse.DirEntry{Name: blobsName, Mode: syscall.S_IFDIR, Ino: d.fsys.inodes.dir(d.ns.id, blobsKey)},
	)
	entries = append(entries, d.layoutEntries()...)
	entries = append(entries, d.tempAndScratchEntries()...)
	return gofs.NewListDirStream(entries), 0
}

func (d *namespaceDir) Getattr(ctx context.Context, f gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	if errno := d.fsys.enter(&d.ns); errno != 0 {
		return errno
	}
	ns, err := d.fsys.db.Namespaces().Stat(d.ns.name)
	if err != nil {
		return toErrno("getattr ns/"+d.ns.name, err)
	}
	d.fsys.fillNamespace(&out.Attr, ns)
	return 0
}

func (d *namespaceDir) Setattr(ctx context.Context, f gofs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	if errno := d.setOwner(ctx, in); errno != 0 {
		return errno
	}
	if errno := d.fsys.enter(&d.ns); errno != 0 {
		return errno
	}
	return setattrStoredDir(d.fsys, in, out, d, d.ns.name, metadata.DirNamespace, "ns/"+d.ns.name)
}

// Mkdir: images/ and blobs/ always exist; any other name is a scratch
// directory (layout_temp.go).
func (d *namespaceDir) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	if errno := d.fsys.enter(&d.ns); errno != 0 {
		return nil, errno
	}
	if isFixedName(name) {
		return nil, syscall.EEXIST
	}
	return d.mkdirScratch(ctx, name, out)
}

// Rmdir of images/ or blobs/ succeeds once they are empty, so that rm -rf
// of a namespace exits 0; they stay while the namespace does.
func (d *namespaceDir) Rmdir(ctx context.Context, name string) syscall.Errno {
	if errno := d.fsys.enter(&d.ns); errno != 0 {
		return errno
	}
	switch name {
	case imagesName:
		if err := d.fsys.db.Images().RemoveDir(d.ns.name, ""); err != nil {
			return toErrno("rmdir ns/"+d.ns.name+"/images", err)
		}
		d.fsys.inodes.forget(d.ns.id, imagesKey)
		return 0
	case blobsName:
		return d.fsys.rmdirBlobs(d.ns, "ns/"+d.ns.name+"/blobs", blobsKey, sha256Key)
	case rootfsName: // listed last: rm -rf reaches it once images/ is empty
		if err := d.fsys.db.Images().RemoveDir(d.ns.name, ""); err != nil {
			return toErrno("rmdir ns/"+d.ns.name+"/rootfs", err)
		}
		d.fsys.inodes.forget(d.ns.id, rootfsKey)
		return 0
	}
	return d.rmdirScratch(name)
}

// rmdirBlobs answers rmdir of blobs/ or blobs/sha256: metadata says
// whether they are empty (they stay while the namespace does).
func (f *filesystem) rmdirBlobs(ns nsRef, path string, keys ...string) syscall.Errno {
	if err := f.db.Content().RemoveDir(ns.name); err != nil {
		return toErrno("rmdir "+path, err)
	}
	f.inodes.forget(ns.id, keys...)
	return 0
}
