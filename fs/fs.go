// Package fs shows an nsfs store as a FUSE filesystem (go-fuse v2 nodes).
//
//	<mountpoint>/                  root.go
//	  ns/                          namespaces_dir.go
//	    <name>/                    namespace_dir.go (xattrs = namespace labels)
//	      images/<ref path…>       image_dir.go (its listings: image_dir_handle.go), image_node.go, image_handles.go
//	      blobs/                   blobs_dir.go
//	        sha256/<hex>           sha256_dir.go, blob_node.go, blob_handles.go
//	        sha256/<other name>    temp_ingest.go, sha256_temp.go (temporary ingests)
//	      rootfs/<ref path…>/…     rootfs_dir.go, rootfs_node.go, rootfs_view.go (read-only)
//	      oci-layout, index.json   layout_files.go
//	      <other name>             layout_temp.go, scratch_dir.go (a tool's temporary files)
//
// A namespace's owner and mode (which everything inside shows), its df
// and root's trusted.nsfs.* settings are owners.go and
// namespace_settings.go.
//
// One file holds one node type, or the handles of one; each node's doc
// comment shows the shell session it serves. Every operation passes one
// gate first (enter, gate.go). The nodes translate system calls into
// metadata calls and errors into errno (errno.go); the rules live below:
// naming rules in package names, the store's rules in package metadata.
// A shell session shows what the code produces:
//
//	$ mkdir /mnt/ns/dev
//	$ setfattr -n user.team -v infra /mnt/ns/dev
//	$ cp manifest.json /mnt/ns/dev/images/redis   # its blobs may come later
//	$ rmdir /mnt/ns/default
//	rmdir: failed to remove '/mnt/ns/default': Directory not empty
//
// and the daemon logs why: `rmdir ns/default: namespace "default" must
// be empty, but it still has images, blobs`.
//
// Every directory node implements every mutating method, if only to refuse
// (go-fuse answers success for some missing ones), and every node answers
// the four xattr methods (ENOSYS would turn xattrs off for the whole
// mount).
package fs

import (
	"context"
	"github.com/nsfs/nsfs/names"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/nsfs/nsfs/metadata"
)

// entryTimeout is how long the kernel keeps a name it looked up (1 s: a
// cached stat then costs what it costs on tmpfs, as measured). The
// mount has no default: each node that answers a name says it, with
// cacheName, so that the one name the kernel must not keep, a blob's,
// says nothing.
const entryTimeout = time.Second

// cacheName lets the kernel keep the name out answers for entryTimeout.
func cacheName(out *fuse.EntryOut) { out.SetEntryTimeout(entryTimeout) }

// Permission bits. A namespace's mode is stored (owners.go); what is
// inside it follows: its directories have the namespace's mode, image
// files its read and write bits, blobs its read bits only.
const (
	dirPerm   = 0o755 // the root, whose owner is the mount's
	imagePerm = 0o666
	blobPerm  = 0o444 // committed blobs are read-only, like chattr +i
)

// filesystem is what every node shares.
type filesystem struct {
	db      *metadata.DB
	inodes  *inodeTable
	inval   *invalidator
	uid     uint32
	gid     uint32
	owners  sync.Map       // namespace ID (uint64) → metadata.Owner: see ownerOf
	ownMu   sync.Mutex     // serialises reads of owners from the store with changes
	started time.Time      // the times of directories that are not records
	handles *handleLimiter // what each user's open handles may hold
	temps   tempIngests    // temporary ingests (temp_ingest.go)
	scratch scratchDirs    // scratch directories of namespaces (layout_temp.go)
	rootfs  rootfsView     // rootfs/: layer indexes and merged trees
	nodes   *nodeBudget    // how many image nodes the daemon keeps (node_budget.go)

	// deleted maps a namespace name to the highest ID of a namespace of
	// that name deleted while mounted (uint64): see enter. One entry per
	// name, however often it is deleted and made again.
	deleted   sync.Map
	deletedMu sync.Mutex // serialises updates of one entry

	lastListing atomic.Pointer[dirListing] // image_dir_handle.go
}

// nsRef names the namespace a node belongs to. A namespace cannot be
// renamed and a new one with the same name gets a new ID, so both fields
// are fixed for the life of a node.
type nsRef struct {
	name string
	id   uint64
}

// joinPath joins a directory path below images/ and a name.
func joinPath(dir, name string) string {
	if dir == "" {
		return name
	}
	return dir + "/" + name
}

// fillDir fills the attributes of a directory of namespace ns (zero:
// above the namespaces, the mount's owner).
func (f *filesystem) fillDir(a *fuse.Attr, ns nsRef, mtime, ctime time.Time) {
	o := f.ownerOf(ns)
	a.Mode = syscall.S_IFDIR | o.Mode
	// 1 means "not counted" to find and fts, which would otherwise
	// skip subdirectories they think cannot exist.
	a.Nlink = 1
	a.Size = 4096
	a.Blksize = 4096
	a.Uid, a.Gid = o.UID, o.GID
	a.SetTimes(&mtime, &mtime, &ctime)
}

// fillFile fills the attributes of a regular file of namespace ns: perm
// is the most it may have (imagePerm, blobPerm), the namespace's mode
// takes away the rest.
func (f *filesystem) fillFile(a *fuse.Attr, ns nsRef, perm uint32, size int64, mtime, ctime time.Time) {
	o := f.ownerOf(ns)
	a.Mode = syscall.S_IFREG | (perm & o.Mode)
	a.Nlink = 1
	a.Size = uint64(size)
	a.Blksize = 4096
	a.Blocks = (uint64(size) + 511) / 512
	a.Uid, a.Gid = o.UID, o.GID
	a.SetTimes(&mtime, &mtime, &ctime)
}

// Modes and owners of what is inside a namespace follow from the
// namespace and are not stored: a setattr on them may name others
// (install creates 0600 and then chmods, tar -x and cp -p restore the
// source's mode and owner), and is accepted as it is for times, so that
// those tools work; the node keeps showing its own. Only a size is acted
// on, by the node; only a namespace keeps a mode and an owner.

// nodeBase is embedded in every node.
type nodeBase struct {
	fsys *filesystem
}

var _ = (gofs.NodeStatfser)((*nodeBase)(nil))

// Statfs reports the filesystem the store lives on (go-fuse answers zeros,
// namelen 0, for a node without it).
func (b *nodeBase) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	var st syscall.Statfs_t
	if err := syscall.Statfs(b.fsys.db.Root(), &st); err != nil {
		return toErrno("statfs "+b.fsys.db.Root(), err)
	}
	const bsize = 4096
	scale := func(blocks uint64) uint64 { return blocks * uint64(st.Bsize) / bsize }
	out.Blocks = scale(st.Blocks)
	out.Bfree = scale(st.Bfree)
	out.Bavail = scale(st.Bavail)
	out.Files = st.Files
	out.Ffree = st.Ffree
	out.Bsize = bsize
	out.Frsize = bsize
	out.NameLen = names.MaxNameLen
	return 0
}

// dirBase is embedded in every directory node: it refuses every mutation
// (EPERM, as for a directory the user may not change, once the gate let
// it through), and the nodes override what they allow.
type dirBase struct {
	nodeBase
	// ns is the namespace the directory lies in; zero above the
	// namespaces (the root, ns/).
	ns nsRef
}

var (
	_ = (gofs.NodeMkdirer)((*dirBase)(nil))
	_ = (gofs.NodeRmdirer)((*dirBase)(nil))
	_ = (gofs.NodeUnlinker)((*dirBase)(nil))
	_ = (gofs.NodeRenamer)((*dirBase)(nil))
	_ = (gofs.NodeLinker)((*dirBase)(nil))
	_ = (gofs.NodeSymlinker)((*dirBase)(nil))
	_ = (gofs.NodeCreater)((*dirBase)(nil))
	_ = (gofs.NodeMknoder)((*dirBase)(nil))
	_ = (gofs.NodeFsyncer)((*dirBase)(nil))
)

func (d *dirBase) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	return nil, d.refuse("mkdir", name)
}

func (d *dirBase) Rmdir(ctx context.Context, name string) syscall.Errno {
	return d.refuse("rmdir", name)
}

func (d *dirBase) Unlink(ctx context.Context, name string) syscall.Errno {
	return d.refuse("unlink", name)
}

func (d *dirBase) Rename(ctx context.Context, name string, newParent gofs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	return d.refuse("rename", name, newName)
}

func (d *dirBase) Link(ctx context.Context, target gofs.InodeEmbedder, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	return nil, d.refuse("link", name)
}

// Symlink is refused everywhere: nothing in the store is a symlink.
func (d *dirBase) Symlink(ctx context.Context, target, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	return nil, d.refuse("symlink", name)
}

func (d *dirBase) Create(ctx context.Context, name string, flags uint32, mode uint32, out *fuse.EntryOut) (*gofs.Inode, gofs.FileHandle, uint32, syscall.Errno) {
	return nil, nil, 0, d.refuse("create", name)
}

// Mknod is refused everywhere: images and blobs are made by writing them.
func (d *dirBase) Mknod(ctx context.Context, name string, mode uint32, dev uint32, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	return nil, d.refuse("mknod", name)
}

// Fsync of a directory succeeds: every change was durable when it returned.
func (*dirBase) Fsync(ctx context.Context, f gofs.FileHandle, flags uint32) syscall.Errno {
	return 0
}

// dirEntries starts a listing with "." and "..", as ls -a expects.
func dirEntries(n *gofs.Inode, capacity int) []fuse.DirEntry {
	parent := n
	if _, p := n.Parent(); p != nil {
		parent = p
	}
	entries := make([]fuse.DirEntry, 0, capacity+2)
	return append(entries,
		fuse.DirEntry{Name: ".", Mode: syscall.S_IFDIR, Ino: n.StableAttr().Ino},
		fuse.DirEntry{Name: "..", Mode: syscall.S_IFDIR, Ino: parent.StableAttr().Ino},
	)
}

// process names the process that made a request: the kernel names the
// calling thread (tid), /proc knows its thread group (tgid). Zero fields
// are unknown.
//
// Write handles use it at close: a program that forks and execs while it
// writes a file gives the child a copy of the descriptor, which exec
// closes (CLOEXEC) — a close of a half-written file that must not commit.
// Only closes by the process that opened the file commit (and the release
// of the last descriptor, if none did).
type process struct {
	tid  uint32 // the thread that made the request
	tgid int    // its process
}

// processOf is the process that made a request (/proc is read once, here,
// at the open).
func processOf(ctx context.Context) process {
	caller, ok := fuse.FromContext(ctx)
	if !ok || caller.Pid == 0 {
		return process{}
	}
	return process{tid: caller.Pid, tgid: threadGroup(caller.Pid)}
}

// threadGroup is the process of thread tid, 0 when unknown.
func threadGroup(tid uint32) int {
	status, err := os.ReadFile("/proc/" + strconv.FormatUint(uint64(tid), 10) + "/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(status), "\n") {
		if rest, ok := strings.CutPrefix(line, "Tgid:"); ok {
			tgid, _ := strconv.Atoi(strings.TrimSpace(rest))
			return tgid
		}
	}
	return 0
}

// closedByOther says whether a close (FLUSH) comes from a process other
// than owner, the one that opened the handle. A close from the thread that
// opened is owner's without asking /proc: the usual open, write, close.
func closedByOther(ctx context.Context, owner process) bool {
	if owner.tgid == 0 {
		return false
	}
	caller, ok := fuse.FromContext(ctx)
	if !ok || caller.Pid == 0 || caller.Pid == owner.tid {
		return false
	}
	p := threadGroup(caller.Pid)
	return p != 0 && p != owner.tgid
}

// dirAttr is the StableAttr of a directory.
func dirAttr(ino uint64) gofs.StableAttr {
	return gofs.StableAttr{Mode: syscall.S_IFDIR, Ino: ino, Gen: generation}
}

// fileAttr is the StableAttr of a regular file.
func fileAttr(ino uint64) gofs.StableAttr {
	return gofs.StableAttr{Mode: syscall.S_IFREG, Ino: ino, Gen: generation}
}
