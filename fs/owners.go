package fs

import (
	"context"
	"syscall"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/nsfs/nsfs/metadata"
)

// Tenants: a namespace belongs to whoever made it, with the mode of the
// mkdir, and everything inside it shows that owner and mode (fillDir,
// fillFile). With --allow-other the kernel checks the bits
// (default_permissions); ns/ is 1777, like /tmp, so that every user can
// make a namespace and only its owner (or root) remove it. df of a
// namespace shows its quota and use.
//
//	alice$ mkdir -m 0700 /mnt/ns/alice
//	alice$ ls -ld /mnt/ns/alice /mnt/ns/alice/images
//	drwx------ 1 alice alice 4096 ... /mnt/ns/alice
//	drwx------ 1 alice alice 4096 ... /mnt/ns/alice/images
//	bob$ ls /mnt/ns/alice
//	ls: cannot open directory '/mnt/ns/alice': Permission denied
//	alice$ chown bob /mnt/ns/alice
//	chown: changing ownership of '/mnt/ns/alice': Operation not permitted
//	root# setfattr -n trusted.nsfs.quota -v 1G /mnt/ns/alice
//	alice$ df -h /mnt/ns/alice
//	Filesystem      Size  Used Avail Use% Mounted on
//	/srv/nsfs       1.0G   16M 1009M   2% /mnt

// namespacesPerm is ns/'s mode: everyone may make a namespace; the
// sticky bit keeps others' namespaces from being removed.
const namespacesPerm = 0o1777

// ownerOf is the owner and mode of namespace ns, which every node inside
// shows; above the namespaces (ns zero) the mount's user with dirPerm.
// Owners change only through this daemon (setOwner), so they are kept
// here after the first read: a stat costs no store read for it.
func (f *filesystem) ownerOf(ns nsRef) metadata.Owner {
	if ns.id == 0 {
		return metadata.Owner{UID: f.uid, GID: f.gid, Mode: dirPerm}
	}
	if o, ok := f.owners.Load(ns.id); ok {
		return o.(metadata.Owner)
	}
	f.ownMu.Lock()
	defer f.ownMu.Unlock()
	if o, ok := f.owners.Load(ns.id); ok {
		return o.(metadata.Owner)
	}
	n, err := f.db.Namespaces().Stat(ns.name)
	if err != nil || n.ID != ns.id {
		// Gone, or unreadable: no bits, and nothing kept.
		return metadata.Owner{UID: f.uid, GID: f.gid}
	}
	f.owners.Store(ns.id, n.Owner)
	return n.Owner
}

// fillNamespace fills the attributes of ns/<name>, as just read.
func (f *filesystem) fillNamespace(a *fuse.Attr, ns metadata.Namespace) {
	mtime, ctime := f.dirTimes(ns.Name, metadata.DirNamespace)
	f.fillDir(a, nsRef{}, mtime, ctime)
	a.Mode = syscall.S_IFDIR | ns.Owner.Mode
	a.Uid, a.Gid = ns.Owner.UID, ns.Owner.GID
}

// fillNamespacesDir fills the attributes of ns/.
func (f *filesystem) fillNamespacesDir(a *fuse.Attr) {
	mtime, ctime := f.dirTimes("", "")
	f.fillDir(a, nsRef{}, mtime, ctime)
	a.Mode = syscall.S_IFDIR | namespacesPerm
}

// callerOf is the user a request comes from (the mount's user when the
// request names none).
func (f *filesystem) callerOf(ctx context.Context) metadata.Caller {
	if c, ok := fuse.FromContext(ctx); ok {
		return metadata.Caller{UID: c.Uid, GID: c.Gid}
	}
	return metadata.Caller{UID: f.uid, GID: f.gid}
}

// newOwner is the owner of a namespace the request's mkdir makes, with
// the mode it asked for (the kernel took the umask away already).
func (f *filesystem) newOwner(ctx context.Context, mode uint32) metadata.Owner {
	c := f.callerOf(ctx)
	return metadata.Owner{UID: c.UID, GID: c.GID, Mode: mode & 0o777}
}

// setOwner applies the mode, owner and group a setattr of ns/<name>
// carries; metadata decides who may (the owner, or root; chown root
// only). The kernel checked the same already when it enforces the bits.
func (d *namespaceDir) setOwner(ctx context.Context, in *fuse.SetAttrIn) syscall.Errno {
	var change metadata.OwnerChange
	if m, ok := in.GetMode(); ok {
		change.Mode = &m
	}
	if u, ok := in.GetUID(); ok {
		change.UID = &u
	}
	if g, ok := in.GetGID(); ok {
		change.GID = &g
	}
	if change == (metadata.OwnerChange{}) {
		return 0
	}
	if errno := d.fsys.enter(&d.ns); errno != 0 {
		return errno
	}
	f := d.fsys
	f.ownMu.Lock() // so that no read of the old owner is kept after this
	defer f.ownMu.Unlock()
	ns, err := f.db.Namespaces().SetOwner(d.ns.name, f.callerOf(ctx), change)
	if err != nil {
		return toErrno("setattr ns/"+d.ns.name, err)
	}
	f.owners.Store(d.ns.id, ns.Owner)
	forgetAttrsBelow(d.EmbeddedInode())
	return 0
}

// forgetAttrsBelow makes the kernel ask again for the attributes of what
// it knows below n (they show n's new owner and mode). Offset -1 drops
// attributes only, no page cache; no directory lock is involved, so it
// is safe from inside the request.
func forgetAttrsBelow(n *gofs.Inode) {
	for _, child := range n.Children() {
		child.NotifyContent(-1, 0)
		forgetAttrsBelow(child)
	}
}

// Statfs of a namespace's directories shows the namespace: its quota as
// the size (or the store's filesystem's size), the bytes it holds as
// used, and what it may still add as available.
func (d *dirBase) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	return d.fsys.statfs(d.ns, out)
}

func (f *imageFile) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	return f.fsys.statfs(f.ns, out)
}

func (f *blobFile) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	return f.fsys.statfs(f.ns, out)
}

// statfs answers statfs below namespace ns (zero: the whole store).
func (f *filesystem) statfs(ns nsRef, out *fuse.StatfsOut) syscall.Errno {
	if errno := (&nodeBase{f}).Statfs(context.Background(), out); errno != 0 || ns.id == 0 {
		return errno
	}
	if errno := f.enter(&ns); errno != 0 {
		return errno
	}
	n, err := f.db.Namespaces().Stat(ns.name)
	if err != nil {
		return toErrno("statfs ns/"+ns.name, err)
	}
	fitNamespace(out, n)
	return 0
}

// fitNamespace turns the store's figures (out, in blocks of out.Bsize)
// into namespace n's.
func fitNamespace(out *fuse.StatfsOut, n metadata.Namespace) {
	bsize := uint64(out.Bsize)
	blocks := func(bytes int64) uint64 { return (uint64(bytes) + bsize - 1) / bsize }
	used := blocks(n.Usage.Held)
	if n.Quota != metadata.NoQuota {
		out.Blocks = uint64(n.Quota) / bsize
	}
	free := uint64(0)
	if out.Blocks > used {
		free = out.Blocks - used
	}
	out.Bfree = free
	out.Bavail = min(out.Bavail, free)
}
