package fs

import (
	"context"
	"syscall"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/nsfs/nsfs/metadata"
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
// their namespace does, have the store's times (times.go), and carry no
// labels.
type fixedDir struct {
	gofs.Inode
	dirBase // with ns, the namespace
	noXattrs
	timesKey string // the directory, as metadata.DB.DirTimes names it
}

func (d *fixedDir) Getattr(ctx context.Context, f gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	if errno := d.fsys.enter(&d.ns); errno != 0 {
		return errno
	}
	d.fsys.fillStoredDir(&out.Attr, d.ns, d.timesKey)
	return 0
}

func (d *fixedDir) Setattr(ctx context.Context, f gofs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	if errno := d.fsys.enter(&d.ns); errno != 0 {
		return errno
	}
	return setattrStoredDir(d.fsys, in, out, d, d.ns.name, d.timesKey, "ns/"+d.ns.name+"/"+d.timesKey)
}

var (
	_ = (gofs.InodeEmbedder)((*blobsDir)(nil))
	_ = (gofs.NodeStatfser)((*blobsDir)(nil))
	_ = (gofs.NodeGetattrer)((*blobsDir)(nil))
	_ = (gofs.NodeSetattrer)((*blobsDir)(nil))
	_ = (gofs.NodeGetxattrer)((*blobsDir)(nil))
	_ = (gofs.NodeSetxattrer)((*blobsDir)(nil))
	_ = (gofs.NodeRemovexattrer)((*blobsDir)(nil))
	_ = (gofs.NodeListxattrer)((*blobsDir)(nil))
	_ = (gofs.NodeFsyncer)((*blobsDir)(nil))
	_ = (gofs.NodeLookuper)((*blobsDir)(nil))
	_ = (gofs.NodeReaddirer)((*blobsDir)(nil))
	_ = (gofs.NodeMkdirer)((*blobsDir)(nil))
	_ = (gofs.NodeMknoder)((*blobsDir)(nil))
	_ = (gofs.NodeLinker)((*blobsDir)(nil))
	_ = (gofs.NodeSymlinker)((*blobsDir)(nil))
	_ = (gofs.NodeCreater)((*blobsDir)(nil))
	_ = (gofs.NodeUnlinker)((*blobsDir)(nil))
	_ = (gofs.NodeRmdirer)((*blobsDir)(nil))
	_ = (gofs.NodeRenamer)((*blobsDir)(nil))
)

func (d *blobsDir) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	if errno := d.fsys.enter(&d.ns, name); errno != 0 {
		return nil, errno
	}
	if name != sha256Name {
		return nil, syscall.ENOENT
	}
	d.fsys.fillStoredDir(&out.Attr, d.ns, metadata.DirBlobs)
	cacheName(out)
	ino := d.fsys.inodes.dir(d.ns.id, sha256Key)
	return d.NewInode(ctx, &sha256Dir{fixedDir{dirBase: d.dirBase, timesKey: metadata.DirBlobs}}, dirAttr(ino)), 0
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
	return nil, d.refuse("mkdir", name)
}

// Rmdir of sha256/ succeeds once the namespace holds no blob; it stays.
func (d *blobsDir) Rmdir(ctx context.Context, name string) syscall.Errno {
	if errno := d.fsys.enter(&d.ns); errno != 0 {
		return errno
	}
	if name == sha256Name {
		return d.fsys.rmdirBlobs(d.ns, "ns/"+d.ns.name+"/blobs/sha256", sha256Key)
	}
	return d.refuse("rmdir", name)
}
