package fs

import (
	"context"
	"syscall"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// rootDir is the mountpoint. It holds only ns/:
//
//	$ ls -a /mnt
//	.  ..  ns
//	$ mkdir /mnt/x
//	mkdir: cannot create directory '/mnt/x': Operation not permitted
//
// Every mutation is refused (dirBase), rmdir of ns/ too: it is the mount's
// one fixed entry, and its number (2) must stay valid, which a successful
// rmdir would end.
type rootDir struct {
	gofs.Inode
	dirBase
	noXattrs
}

var (
	_ = (gofs.InodeEmbedder)((*rootDir)(nil))
	_ = (gofs.NodeStatfser)((*rootDir)(nil))
	_ = (gofs.NodeGetattrer)((*rootDir)(nil))
	_ = (gofs.NodeSetattrer)((*rootDir)(nil))
	_ = (gofs.NodeGetxattrer)((*rootDir)(nil))
	_ = (gofs.NodeSetxattrer)((*rootDir)(nil))
	_ = (gofs.NodeRemovexattrer)((*rootDir)(nil))
	_ = (gofs.NodeListxattrer)((*rootDir)(nil))
	_ = (gofs.NodeFsyncer)((*rootDir)(nil))
	_ = (gofs.NodeLookuper)((*rootDir)(nil))
	_ = (gofs.NodeReaddirer)((*rootDir)(nil))
	_ = (gofs.NodeMkdirer)((*rootDir)(nil))
	_ = (gofs.NodeMknoder)((*rootDir)(nil))
	_ = (gofs.NodeLinker)((*rootDir)(nil))
	_ = (gofs.NodeSymlinker)((*rootDir)(nil))
	_ = (gofs.NodeCreater)((*rootDir)(nil))
	_ = (gofs.NodeUnlinker)((*rootDir)(nil))
	_ = (gofs.NodeRmdirer)((*rootDir)(nil))
	_ = (gofs.NodeRenamer)((*rootDir)(nil))
)

const namespacesName = "ns"

func (r *rootDir) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	if errno := r.fsys.enter(nil, name); errno != 0 {
		return nil, errno
	}
	if name != namespacesName {
		return nil, syscall.ENOENT
	}
	r.fsys.fillNamespacesDir(&out.Attr)
	cacheName(out)
	return r.NewInode(ctx, &namespacesDir{dirBase: r.dirBase}, dirAttr(namespacesIno)), 0
}

func (r *rootDir) Readdir(ctx context.Context) (gofs.DirStream, syscall.Errno) {
	entries := dirEntries(r.EmbeddedInode(), 1)
	entries = append(entries, fuse.DirEntry{Name: namespacesName, Mode: syscall.S_IFDIR, Ino: namespacesIno})
	return gofs.NewListDirStream(entries), 0
}

func (r *rootDir) Getattr(ctx context.Context, f gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	r.fsys.fillDir(&out.Attr, r.ns, r.fsys.started, r.fsys.started)
	return 0
}

func (r *rootDir) Setattr(ctx context.Context, f gofs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	return setattrDir(in, out, r)
}

// setattrDir answers setattr on a directory: times, mode and owner are
// accepted and not stored; a size is EISDIR.
func setattrDir(in *fuse.SetAttrIn, out *fuse.AttrOut, n gofs.NodeGetattrer) syscall.Errno {
	if _, ok := in.GetSize(); ok {
		return syscall.EISDIR
	}
	return n.Getattr(context.Background(), nil, out)
}
