package fs

import (
	"context"
	"io"
	"os"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/nsfs/nsfs/layerindex"
	"github.com/opencontainers/go-digest"
	"github.com/pkg/errors"
	"golang.org/x/sys/unix"
)

// rootfsNode is a file of an image's merged layers below rootfs/<ref>/:
// a directory, regular file, symlink, device or fifo, with the mode,
// owner, size and time of its tar header, and the xattrs the tar
// recorded. Hard links are one node (one inode number, its link count).
//
//	$ ls -l rootfs/app:v1/bin/sh
//	lrwxrwxrwx 1 root root 4 Jan  1  2025 rootfs/app:v1/bin/sh -> dash
//	$ sha256sum rootfs/app:v1/usr/bin/dash
//	...
//	$ find rootfs/app:v1 -perm -4000
//	rootfs/app:v1/usr/bin/su
//	$ chmod 600 rootfs/app:v1/etc/passwd
//	chmod: changing permissions of 'rootfs/app:v1/etc/passwd': Read-only file system
//
// The kernel keeps one per file it knows (tens of thousands for a walk of
// an image), so it holds only the tree's node and what the whole image
// shares.
type rootfsNode struct {
	gofs.Inode
	*rootfsImage
	node *layerindex.Node // the name it was looked up by
}

// rootfsImage is what every node of one image's tree shares.
type rootfsImage struct {
	readOnly
	tree      *layerindex.Tree
	image     uint64        // the image's ID
	target    digest.Digest // and its target, which the numbers derive from
	imagePath string        // "ns/foo/rootfs/app:v1", for log lines
	blobs     layerBlobs    // its layers' open blobs (rootfs_blob.go)
}

// display names the node in log lines (a hard link by its first name).
func (n *rootfsNode) display() string {
	if name := n.entry().Name; name != "" {
		return n.imagePath + "/" + name
	}
	return n.imagePath
}

var (
	_ = (gofs.InodeEmbedder)((*rootfsNode)(nil))
	_ = (gofs.NodeStatfser)((*rootfsNode)(nil))
	_ = (gofs.NodeGetattrer)((*rootfsNode)(nil))
	_ = (gofs.NodeSetattrer)((*rootfsNode)(nil))
	_ = (gofs.NodeGetxattrer)((*rootfsNode)(nil))
	_ = (gofs.NodeListxattrer)((*rootfsNode)(nil))
	_ = (gofs.NodeLookuper)((*rootfsNode)(nil))
	_ = (gofs.NodeReadlinker)((*rootfsNode)(nil))
	_ = (gofs.NodeOpener)((*rootfsNode)(nil))
	_ = (gofs.NodeOpendirHandler)((*rootfsNode)(nil))
	_ = (gofs.NodeMkdirer)((*rootfsNode)(nil)) // and every other change, EROFS (readOnly)
)

// rootfsTimeout is how long the kernel keeps what it learnt below an
// image's root: a node's number derives from the image's target, so
// what it names never changes (a replaced image is a new root, whose
// name, rootfs/<ref>, the kernel keeps only for entryTimeout).
const rootfsTimeout = time.Hour

// rootfsUnavailable makes err, why an image's files cannot be shown, an
// error of no kind (EIO, logged): an ENOENT for a layer the namespace
// cannot see would hide the reason.
func rootfsUnavailable(err error) error {
	return errors.New("no rootfs: " + err.Error())
}

func (n *rootfsNode) entry() *layerindex.Entry { return n.node.Inode.Entry }

func (n *rootfsNode) ino(i *layerindex.Inode) uint64 {
	return rootfsIno(n.ns.id, n.image, n.target, i.Number)
}

// typeBits is the S_IF* of an entry.
func typeBits(e *layerindex.Entry) uint32 {
	switch e.Kind {
	case layerindex.Dir:
		return syscall.S_IFDIR
	case layerindex.Symlink:
		return syscall.S_IFLNK
	case layerindex.CharDevice:
		return syscall.S_IFCHR
	case layerindex.BlockDevice:
		return syscall.S_IFBLK
	case layerindex.FIFO:
		return syscall.S_IFIFO
	}
	return syscall.S_IFREG
}

func (n *rootfsNode) stableAttr() gofs.StableAttr {
	return gofs.StableAttr{Mode: typeBits(n.entry()), Ino: n.ino(n.node.Inode), Gen: generation}
}

// fill gives the attributes the tar header says.
func (n *rootfsNode) fill(a *fuse.Attr) {
	i := n.node.Inode
	e := i.Entry
	a.Ino = n.ino(i)
	a.Mode = typeBits(e) | e.Mode
	a.Nlink = i.Nlink
	a.Uid, a.Gid = uint32(e.UID), uint32(e.GID)
	switch e.Kind {
	case layerindex.Regular:
		a.Size = uint64(e.Size)
	case layerindex.Symlink:
		a.Size = uint64(len(e.Link))
		a.Mode = syscall.S_IFLNK | 0o777 // as Linux shows every symlink
	case layerindex.Dir:
		a.Size = 4096
	case layerindex.CharDevice, layerindex.BlockDevice:
		a.Rdev = uint32(unix.Mkdev(uint32(e.DevMajor), uint32(e.DevMinor)))
	}
	a.Blksize = 4096
	a.Blocks = (a.Size + 511) / 512
	t := time.Unix(0, e.ModTime)
	a.SetTimes(&t, &t, &t)
}

func (n *rootfsNode) child(c *layerindex.Node) *rootfsNode {
	return &rootfsNode{rootfsImage: n.rootfsImage, node: c}
}

func (n *rootfsNode) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	if errno := n.fsys.enter(&n.ns, name); errno != 0 {
		return nil, errno
	}
	c := n.node.Lookup(name)
	if c == nil {
		return nil, syscall.ENOENT
	}
	ch := n.child(c)
	ch.fill(&out.Attr)
	out.SetEntryTimeout(rootfsTimeout)
	out.SetAttrTimeout(rootfsTimeout)
	return n.NewInode(ctx, ch, ch.stableAttr()), 0
}

func (n *rootfsNode) Getattr(ctx context.Context, f gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	if errno := n.fsys.enter(&n.ns); errno != 0 {
		return errno
	}
	n.fill(&out.Attr)
	out.SetTimeout(rootfsTimeout)
	return 0
}

// OpendirHandle lets the kernel keep a directory's listing (it never
// changes, see rootfsTimeout): find and ls -R of a tree read it once, and
// every later opendir costs only its own round trip (the handle lists
// nothing until asked).
func (n *rootfsNode) OpendirHandle(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	if errno := n.fsys.enter(&n.ns); errno != 0 {
		return nil, 0, errno
	}
	if n.entry().Kind != layerindex.Dir {
		return nil, 0, syscall.ENOTDIR
	}
	return &rootfsDirHandle{node: n}, fuse.FOPEN_CACHE_DIR | fuse.FOPEN_KEEP_CACHE, 0
}

// rootfsDirHandle lists a directory below rootfs/<ref>/ from its tree
// node: ".", "..", then the children. go-fuse numbers the entries'
// offsets 1, 2, ... in order, so an offset is a position.
type rootfsDirHandle struct {
	node *rootfsNode
	pos  int
	cur  fuse.DirEntry // what Readdirent returned last (go-fuse copies it)
}

var (
	_ = (gofs.FileReaddirenter)((*rootfsDirHandle)(nil))
	_ = (gofs.FileSeekdirer)((*rootfsDirHandle)(nil))
)

func (h *rootfsDirHandle) Readdirent(ctx context.Context) (*fuse.DirEntry, syscall.Errno) {
	n := h.node
	switch {
	case h.pos == 0:
		h.cur = fuse.DirEntry{Name: ".", Mode: syscall.S_IFDIR, Ino: n.StableAttr().Ino}
	case h.pos == 1:
		parent := n.EmbeddedInode()
		if _, p := parent.Parent(); p != nil {
			parent = p
		}
		h.cur = fuse.DirEntry{Name: "..", Mode: syscall.S_IFDIR, Ino: parent.StableAttr().Ino}
	case h.pos-2 < n.node.NumChildren():
		c := n.node.Child(h.pos - 2)
		h.cur = fuse.DirEntry{Name: c.Name, Mode: typeBits(c.Inode.Entry), Ino: n.ino(c.Inode)}
	default:
		return nil, 0
	}
	h.pos++
	return &h.cur, 0
}

func (h *rootfsDirHandle) Seekdir(ctx context.Context, off uint64) syscall.Errno {
	h.pos = int(min(off, uint64(h.node.node.NumChildren()+2)))
	return 0
}

func (n *rootfsNode) Setattr(ctx context.Context, f gofs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	return n.erofs()
}

func (n *rootfsNode) Readlink(ctx context.Context) ([]byte, syscall.Errno) {
	if errno := n.fsys.enter(&n.ns); errno != 0 {
		return nil, errno
	}
	if n.entry().Kind != layerindex.Symlink {
		return nil, syscall.EINVAL
	}
	return []byte(n.entry().Link), 0
}

// Getxattr answers the xattrs the tar recorded for the file (PAX
// SCHILY.xattr.*), whatever their namespace; others are absent, and
// system.* (POSIX ACLs) is not supported, so that ls -l stops asking for
// each file.
func (n *rootfsNode) Getxattr(ctx context.Context, attr string, dest []byte) (uint32, syscall.Errno) {
	if errno := n.fsys.enter(&n.ns); errno != 0 {
		return 0, errno
	}
	v, ok := n.entry().Xattrs[attr]
	if !ok {
		// A name the layer did not record answers as elsewhere on the
		// mount: a label that is not there, or, outside user.,
		// EOPNOTSUPP, after which GNU ls stops probing security.selinux
		// and ACLs for every file (ls -lR of an image).
		if strings.HasPrefix(attr, "user.") {
			return 0, syscall.ENODATA
		}
		return 0, syscall.EOPNOTSUPP
	}
	return getValue(v, dest)
}

func (n *rootfsNode) Listxattr(ctx context.Context, dest []byte) (uint32, syscall.Errno) {
	if errno := n.fsys.enter(&n.ns); errno != 0 {
		return 0, errno
	}
	xs := n.entry().Xattrs
	names := make([]string, 0, len(xs))
	size := 0
	for k := range xs {
		names = append(names, k)
		size += len(k) + 1
	}
	if len(dest) < size {
		return uint32(size), syscall.ERANGE
	}
	sort.Strings(names)
	off := 0
	for _, k := range names {
		off += copy(dest[off:], k)
		dest[off] = 0
		off++
	}
	return uint32(off), 0
}

// Open reads a regular file from its layer's blob; a write is EROFS.
// The bytes never change (the numbers derive from the image's target),
// so the kernel keeps its page cache across opens, and the blob is
// opened at the first read the cache cannot answer.
func (n *rootfsNode) Open(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	if errno := n.fsys.enter(&n.ns); errno != 0 {
		return nil, 0, errno
	}
	if flags&(syscall.O_WRONLY|syscall.O_RDWR|syscall.O_TRUNC|syscall.O_APPEND) != 0 {
		return nil, 0, syscall.EROFS
	}
	if n.entry().Kind != layerindex.Regular {
		return nil, 0, syscall.EACCES
	}
	return &rootfsHandle{node: n}, rootfsOpenFlags, 0
}

// rootfsOpenFlags: the kernel keeps a file's pages across opens (its
// bytes never change), and a close, which has nothing to flush, makes no
// round trip to the daemon (tar -c of an image closes every file).
const rootfsOpenFlags = fuse.FOPEN_KEEP_CACHE | fuse.FOPEN_NOFLUSH

// rootfsHandle reads one open file of a rootfs, through a decompressor
// that goes on where the last read of the layer stopped.
type rootfsHandle struct {
	node *rootfsNode

	mu     sync.Mutex
	blob   *os.File // nil until the first read
	shared *sharedBlob
	reader *layerindex.Reader
	file   *layerindex.FileReader
}

var (
	_ = (gofs.FileReader)((*rootfsHandle)(nil))
	_ = (gofs.FileReleaser)((*rootfsHandle)(nil))
)

// open opens the blob of the file's layer, which the namespace must
// still see.
func (h *rootfsHandle) open() error {
	n := h.node
	i := n.node.Inode
	layer := n.tree.Layers[i.Layer]
	shared, err := n.blobs.acquire(layer.Digest, func() (*os.File, error) {
		return n.fsys.db.Content().Open(n.ns.name, layer.Digest)
	})
	if err != nil {
		return err
	}
	blob := shared.file
	reopen := func() (io.ReaderAt, io.Closer, error) {
		// The pool keeps a decompressor after this handle closes: it
		// reads through a descriptor of its own.
		fd, err := unix.FcntlInt(blob.Fd(), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			return nil, nil, errors.Wrapf(err, "dup %s", blob.Name())
		}
		f := os.NewFile(uintptr(fd), blob.Name())
		return f, f, nil
	}
	h.blob, h.shared = blob, shared
	h.reader = layerindex.NewPooledReader(layer, blob, n.fsys.rootfs.cursors, reopen)
	h.file = h.reader.File(i.Entry)
	return nil
}

func (h *rootfsHandle) Read(ctx context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.blob == nil {
		if err := h.open(); err != nil {
			return nil, toErrno("read "+h.node.display(), err)
		}
	}
	e := h.node.entry()
	layer := h.node.tree.Layers[h.node.node.Inode.Layer]
	if !e.Sparse && off < e.Size {
		// The spans it reads may be under way in the background.
		h.node.fsys.rootfs.prefetch.wait(ctx, layer, e.Data+off)
		h.node.fsys.rootfs.prefetch.wait(ctx, layer, e.Data+min(off+int64(len(dest)), e.Size)-1)
	}
	n, err := h.file.ReadAt(dest, off)
	if !e.Sparse && n > 0 {
		h.node.fsys.rootfs.prefetch.read(layer, e.Data+off, h.blob, h.node.fsys.rootfs.cursors)
	}
	if err != nil && !isEOF(err) {
		return nil, toErrno("read "+h.node.display(), err)
	}
	return fuse.ReadResultData(dest[:n]), 0
}

func (h *rootfsHandle) Release(ctx context.Context) syscall.Errno {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.blob != nil {
		h.reader.Close()
		h.node.blobs.release(h.shared)
	}
	return 0
}

func isEOF(err error) bool { return errors.Is(err, io.EOF) }
