package fs

import (
	"context"
	"syscall"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/nsfs/nsfs/layerindex"
	"github.com/nsfs/nsfs/xattr"
)

// notShownKey is the key of the xattr (user.nsfs.error) of rootfs/<ref>
// that says why the image's files cannot be shown.
const notShownKey = "nsfs.error"

// rootfsNotShown stands at rootfs/<ref> for an image whose layers cannot
// be shown (layerindex.NotShownError: an entry that climbs out of the
// root, a damaged or cut layer): a directory that cannot be opened, and
// whose xattr says why, where an EIO at the lookup would leave `ls -l`
// a `d?????????` and the reason in the daemon's log only. Every access
// below it is EIO, and the log says why each time.
//
//	$ ls -l ns/dev/rootfs
//	dr-xr-xr-x 1 root root 4096 Dec  2 10:00 bad
//	$ ls ns/dev/rootfs/bad
//	ls: cannot open directory 'ns/dev/rootfs/bad': Input/output error
//	$ getfattr -d ns/dev/rootfs/bad
//	# file: ns/dev/rootfs/bad
//	user.nsfs.error="layer 1 (sha256:…) is not shown: tar entry \"../../etc/evil\" climbs out of the root (a \"..\" above it)"
type rootfsNotShown struct {
	gofs.Inode
	readOnly
	display string // "ns/dev/rootfs/bad"
	why     error
	attr    fuse.Attr
}

var (
	_ = (gofs.InodeEmbedder)((*rootfsNotShown)(nil))
	_ = (gofs.NodeStatfser)((*rootfsNotShown)(nil))
	_ = (gofs.NodeGetattrer)((*rootfsNotShown)(nil))
	_ = (gofs.NodeSetattrer)((*rootfsNotShown)(nil))
	_ = (gofs.NodeGetxattrer)((*rootfsNotShown)(nil))
	_ = (gofs.NodeListxattrer)((*rootfsNotShown)(nil))
	_ = (gofs.NodeLookuper)((*rootfsNotShown)(nil))
	_ = (gofs.NodeOpendirer)((*rootfsNotShown)(nil))
	_ = (gofs.NodeReaddirer)((*rootfsNotShown)(nil))
	_ = (gofs.NodeMkdirer)((*rootfsNotShown)(nil)) // and every other change, EROFS (readOnly)
)

// unavailableRoot answers the lookup of image ref whose tree imageTree
// could not make (err): an image whose layers cannot be shown is a
// rootfsNotShown; any other error is EIO, logged.
func (d *rootfsDir) unavailableRoot(ctx context.Context, ref string, err error, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	op := "lookup " + d.display(ref)
	if !layerindex.IsNotShown(err) {
		return nil, toErrno(op, rootfsUnavailable(err))
	}
	img, serr := d.fsys.db.Images().Stat(d.ns.name, ref)
	if serr != nil {
		return nil, lookupErrno(op, serr)
	}
	toErrno(op, rootfsUnavailable(err)) // logs why
	n := &rootfsNotShown{readOnly: d.readOnly, display: d.display(ref), why: err}
	d.fsys.fillDir(&n.attr, d.ns, img.UpdatedAt, img.ChangedAt)
	n.attr.Mode &^= 0o222
	// Not the number of the tree's root (1): a later lookup that shows
	// the tree must not find this node.
	n.attr.Ino = rootfsIno(d.ns.id, img.ID, img.Target.Digest, 0)
	out.Attr = n.attr
	cacheName(out)
	return d.NewInode(ctx, n, dirAttr(n.attr.Ino)), 0
}

// refuse is the answer to every access below the node: EIO, logged.
func (n *rootfsNotShown) refuse(op string) syscall.Errno {
	return toErrno(op, rootfsUnavailable(n.why))
}

func (n *rootfsNotShown) Getattr(ctx context.Context, f gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	if errno := n.fsys.enter(&n.ns); errno != 0 {
		return errno
	}
	out.Attr = n.attr
	return 0
}

func (n *rootfsNotShown) Setattr(ctx context.Context, f gofs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	return n.erofs()
}

func (n *rootfsNotShown) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	if errno := n.fsys.enter(&n.ns, name); errno != 0 {
		return nil, errno
	}
	return nil, n.refuse("lookup " + n.display + "/" + name)
}

func (n *rootfsNotShown) Opendir(ctx context.Context) syscall.Errno {
	if errno := n.fsys.enter(&n.ns); errno != 0 {
		return errno
	}
	return n.refuse("opendir " + n.display)
}

func (n *rootfsNotShown) Readdir(ctx context.Context) (gofs.DirStream, syscall.Errno) {
	if errno := n.fsys.enter(&n.ns); errno != 0 {
		return nil, errno
	}
	return nil, n.refuse("readdir " + n.display)
}

// Getxattr answers user.nsfs.error with why; other names as a file
// without xattrs.
func (n *rootfsNotShown) Getxattr(ctx context.Context, attr string, dest []byte) (uint32, syscall.Errno) {
	if errno := n.fsys.enter(&n.ns); errno != 0 {
		return 0, errno
	}
	if attr == xattr.UserPrefix+notShownKey {
		return getValue(n.why.Error(), dest)
	}
	return noXattrs{}.Getxattr(ctx, attr, dest)
}

func (n *rootfsNotShown) Listxattr(ctx context.Context, dest []byte) (uint32, syscall.Errno) {
	if errno := n.fsys.enter(&n.ns); errno != 0 {
		return 0, errno
	}
	size, err := xattr.List(dest, []string{notShownKey})
	if err != nil {
		return size, syscall.ERANGE
	}
	return size, 0
}
