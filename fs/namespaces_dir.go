package fs

import (
	"context"
	"syscall"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/nsfs/nsfs/metadata"
)

// namespacesDir is ns/: one directory per namespace.
//
//	$ mkdir /mnt/ns/dev
//	$ ls /mnt/ns
//	default  dev
//	$ mkdir /mnt/ns/-bad
//	mkdir: cannot create directory '/mnt/ns/-bad': Invalid argument
//	$ rmdir /mnt/ns/default
//	rmdir: failed to remove '/mnt/ns/default': Directory not empty
//	$ touch /mnt/ns/file
//	touch: cannot touch '/mnt/ns/file': Operation not permitted
type namespacesDir struct {
	gofs.Inode
	dirBase
	noXattrs
}

var (
	_ = (gofs.InodeEmbedder)((*namespacesDir)(nil))
	_ = (gofs.NodeStatfser)((*namespacesDir)(nil))
	_ = (gofs.NodeGetattrer)((*namespacesDir)(nil))
	_ = (gofs.NodeSetattrer)((*namespacesDir)(nil))
	_ = (gofs.NodeGetxattrer)((*namespacesDir)(nil))
	_ = (gofs.NodeSetxattrer)((*namespacesDir)(nil))
	_ = (gofs.NodeRemovexattrer)((*namespacesDir)(nil))
	_ = (gofs.NodeListxattrer)((*namespacesDir)(nil))
	_ = (gofs.NodeFsyncer)((*namespacesDir)(nil))
	_ = (gofs.NodeLookuper)((*namespacesDir)(nil))
	_ = (gofs.NodeReaddirer)((*namespacesDir)(nil))
	_ = (gofs.NodeMkdirer)((*namespacesDir)(nil))
	_ = (gofs.NodeMknoder)((*namespacesDir)(nil))
	_ = (gofs.NodeLinker)((*namespacesDir)(nil))
	_ = (gofs.NodeSymlinker)((*namespacesDir)(nil))
	_ = (gofs.NodeCreater)((*namespacesDir)(nil))
	_ = (gofs.NodeUnlinker)((*namespacesDir)(nil))
	_ = (gofs.NodeRmdirer)((*namespacesDir)(nil))
	_ = (gofs.NodeRenamer)((*namespacesDir)(nil))
)

func (d *namespacesDir) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	if errno := d.fsys.enter(nil, name); errno != 0 {
		return nil, errno
	}
	ns, err := d.fsys.db.Namespaces().Stat(name)
	if err != nil {
		if errno := lookupErrno("lookup ns/"+name, err); errno != syscall.ENOENT {
			return nil, errno
		}
		return nil, cacheMiss(out) // negative.go: made only by mkdir here
	}
	return d.namespaceNode(ctx, ns, out), 0
}

func (d *namespacesDir) namespaceNode(ctx context.Context, ns metadata.Namespace, out *fuse.EntryOut) *gofs.Inode {
	d.fsys.fillNamespace(&out.Attr, ns)
	cacheName(out)
	return d.NewInode(ctx, newNamespaceDir(d.fsys, nsRef{ns.Name, ns.ID}), dirAttr(recordIno(ns.ID)))
}

func (d *namespacesDir) Readdir(ctx context.Context) (gofs.DirStream, syscall.Errno) {
	list, err := d.fsys.db.Namespaces().List()
	if err != nil {
		return nil, toErrno("readdir ns", err)
	}
	entries := dirEntries(d.EmbeddedInode(), len(list))
	for _, ns := range list {
		entries = append(entries, fuse.DirEntry{Name: ns.Name, Mode: syscall.S_IFDIR, Ino: recordIno(ns.ID)})
	}
	return gofs.NewListDirStream(entries), 0
}

func (d *namespacesDir) Getattr(ctx context.Context, f gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	d.fsys.fillNamespacesDir(&out.Attr)
	return 0
}

func (d *namespacesDir) Setattr(ctx context.Context, f gofs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	return setattrStoredDir(d.fsys, in, out, d, "", "", "ns")
}

// Mkdir creates a namespace.
func (d *namespacesDir) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	if errno := d.fsys.enter(nil, name); errno != 0 {
		return nil, errno
	}
	ns, err := d.fsys.db.Namespaces().CreateOwned(name, d.fsys.newOwner(ctx, mode), nil)
	if err != nil {
		return nil, toErrno("mkdir ns/"+name, err)
	}
	return d.namespaceNode(ctx, ns, out), 0
}

// Rmdir deletes a namespace; metadata refuses while it has images or
// blobs, inside the transaction that deletes.
func (d *namespacesDir) Rmdir(ctx context.Context, name string) syscall.Errno {
	if errno := d.fsys.enter(nil, name); errno != 0 {
		return errno
	}
	ns, err := d.fsys.db.Namespaces().Delete(name)
	if err != nil {
		return toErrno("rmdir ns/"+name, err)
	}
	// Before the kernel can let anyone make the name again (it holds ns/
	// until we return).
	d.fsys.namespaceDeleted(ns)
	d.fsys.inodes.forgetNamespace(ns.ID)
	d.fsys.owners.Delete(ns.ID)
	return 0
}
