// Command barefs serves a bare in-memory filesystem over FUSE: the floor
// nsfs is measured against in `make bench` (see bench/main.go).
//
//	$ bin/barefs /tmp/bare &
//	$ mkdir /tmp/bare/ns && setfattr -n user.k -v v /tmp/bare/ns
//	$ kill %1          # unmounts, then exits
//
// Directories, files and extended attributes live in memory only; nothing
// is checked, and nothing is durable unless -commits DIR asks each mkdir,
// rmdir and xattr change for the disk writes of a one-page bbolt commit
// (commits.go), the floor of make bench's commit rows. It mounts with exactly nsfs's options
// (fs.MountOptions, with the 1 s entry timeout nsfs's nodes give their
// names: 1 s entry and attribute timeouts, no negative caching,
// the same capabilities), so that the ratio nsfs/barefs of a workload is
// what the store costs on top of FUSE itself.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	nsfs "github.com/nsfs/nsfs/fs"
)

func main() {
	log.SetFlags(0)
	log.SetPrefix("barefs: ")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: barefs [-commits DIR] MOUNTPOINT  (serves until SIGINT/SIGTERM or an unmount)")
		flag.PrintDefaults()
	}
	commitDir := flag.String("commits", "", "make every mkdir, rmdir and xattr change write and fdatasync a data page and a meta page in a file in `DIR`, as a one-page bbolt commit does")
	flag.BoolVar(&rootfsLike, "rootfs", false, "serve as nsfs serves rootfs/<ref>/: names and attributes kept an hour, opens that keep the page cache and send no FLUSH")
	flag.Parse()
	if flag.NArg() != 1 {
		flag.Usage()
		os.Exit(2)
	}
	mountpoint := flag.Arg(0)
	if *commitDir != "" {
		if err := openCommits(*commitDir); err != nil {
			log.Fatalf("-commits: %v", err)
		}
	}
	opts := nsfs.MountOptions("barefs", nsfs.Config{})
	// nsfs's nodes give each name they answer a 1 s entry timeout
	// (blob names none); barefs has no blobs, so the default does it.
	second := time.Second
	if rootfsLike {
		second = time.Hour
	}
	opts.EntryTimeout = &second
	opts.AttrTimeout = &second
	// Not fuse.nsfs: the nsfs CLI finds its mount by that type.
	opts.MountOptions.Name = "barefs"
	root := &dir{node: newNode()}
	server, err := gofs.Mount(mountpoint, root, opts)
	if err != nil {
		log.Fatalf("mount %s: %v", mountpoint, err)
	}
	nsfs.SpareProcs()
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		for range signals {
			if err := server.Unmount(); err != nil {
				log.Printf("unmount %s: %v; still serving", mountpoint, err)
			}
		}
	}()
	server.Wait()
}

// inodes numbers every node, so go-fuse never invents numbers (the root
// is 1, as fs.MountOptions says).
var inodes atomic.Uint64

func init() { inodes.Store(1) }

// node is what directories and files share: attributes and xattrs.
type node struct {
	mu     sync.Mutex
	xattrs map[string][]byte
	mtime  time.Time
}

func newNode() node { return node{xattrs: map[string][]byte{}, mtime: time.Now()} }

// Names outside user. answer EOPNOTSUPP, as nsfs answers them (ls and cp
// then stop probing the filesystem).
func (n *node) Getxattr(ctx context.Context, attr string, dest []byte) (uint32, syscall.Errno) {
	if !strings.HasPrefix(attr, "user.") {
		return 0, syscall.ENOTSUP
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	v, ok := n.xattrs[attr]
	if !ok {
		return 0, syscall.ENODATA
	}
	if len(dest) < len(v) {
		return uint32(len(v)), syscall.ERANGE
	}
	return uint32(copy(dest, v)), 0
}

func (n *node) Setxattr(ctx context.Context, attr string, data []byte, flags uint32) syscall.Errno {
	if !strings.HasPrefix(attr, "user.") {
		return syscall.ENOTSUP
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	n.xattrs[attr] = append([]byte(nil), data...) // go-fuse reuses data
	return commit()
}

func (n *node) Removexattr(ctx context.Context, attr string) syscall.Errno {
	if !strings.HasPrefix(attr, "user.") {
		return syscall.ENOTSUP
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if _, ok := n.xattrs[attr]; !ok {
		return syscall.ENODATA
	}
	delete(n.xattrs, attr)
	return commit()
}

func (n *node) Listxattr(ctx context.Context, dest []byte) (uint32, syscall.Errno) {
	n.mu.Lock()
	defer n.mu.Unlock()
	var b []byte
	for k := range n.xattrs {
		b = append(append(b, k...), 0)
	}
	if len(dest) < len(b) {
		return uint32(len(b)), syscall.ERANGE
	}
	return uint32(copy(dest, b)), 0
}

func fillAttr(a *fuse.Attr, mode uint32, size int, mtime time.Time) {
	a.Mode = mode
	a.Nlink = 1
	a.Size = uint64(size)
	a.Blksize = 4096
	a.Blocks = (uint64(size) + 511) / 512
	a.Uid, a.Gid = uint32(os.Getuid()), uint32(os.Getgid())
	a.SetTimes(&mtime, &mtime, &mtime)
}

// dir is a directory: its entries are go-fuse's tree of children, which
// answers lookup and readdir.
type dir struct {
	gofs.Inode
	node
}

var (
	_ = (gofs.NodeGetattrer)((*dir)(nil))
	_ = (gofs.NodeSetattrer)((*dir)(nil))
	_ = (gofs.NodeMkdirer)((*dir)(nil))
	_ = (gofs.NodeRmdirer)((*dir)(nil))
	_ = (gofs.NodeCreater)((*dir)(nil))
	_ = (gofs.NodeUnlinker)((*dir)(nil))
	_ = (gofs.NodeGetxattrer)((*dir)(nil))
	_ = (gofs.NodeSetxattrer)((*dir)(nil))
	_ = (gofs.NodeRemovexattrer)((*dir)(nil))
	_ = (gofs.NodeListxattrer)((*dir)(nil))
)

func (d *dir) Getattr(ctx context.Context, f gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	fillAttr(&out.Attr, syscall.S_IFDIR|0o755, 4096, d.mtime)
	return 0
}

func (d *dir) Setattr(ctx context.Context, f gofs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	return d.Getattr(ctx, f, out)
}

func (d *dir) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	if d.GetChild(name) != nil {
		return nil, syscall.EEXIST
	}
	child := &dir{node: newNode()}
	fillAttr(&out.Attr, syscall.S_IFDIR|0o755, 4096, child.mtime)
	// Persistent: go-fuse drops a node the kernel forgot, and the tree
	// is the only copy of this filesystem (an entry READDIRPLUS handed
	// the kernel, evicted later, would be gone).
	if errno := commit(); errno != 0 {
		return nil, errno
	}
	return d.NewPersistentInode(ctx, child, gofs.StableAttr{Mode: syscall.S_IFDIR, Ino: inodes.Add(1), Gen: 1}), 0
}

// Rmdir refuses a directory with entries (go-fuse's default answers
// success and drops them from its tree).
func (d *dir) Rmdir(ctx context.Context, name string) syscall.Errno {
	child := d.GetChild(name)
	if child == nil {
		return syscall.ENOENT
	}
	if len(child.Children()) > 0 {
		return syscall.ENOTEMPTY
	}
	return commit()
}

func (d *dir) Create(ctx context.Context, name string, flags uint32, mode uint32, out *fuse.EntryOut) (*gofs.Inode, gofs.FileHandle, uint32, syscall.Errno) {
	if ch := d.GetChild(name); ch != nil {
		if flags&syscall.O_EXCL != 0 {
			return nil, nil, 0, syscall.EEXIST
		}
		f, ok := ch.Operations().(*file)
		if !ok {
			return nil, nil, 0, syscall.EISDIR
		}
		if flags&syscall.O_TRUNC != 0 {
			f.mu.Lock()
			f.data = f.data[:0]
			f.mu.Unlock()
		}
		var a fuse.AttrOut
		f.Getattr(ctx, nil, &a)
		out.Attr = a.Attr
		return ch, nil, 0, 0
	}
	f := &file{node: newNode()}
	fillAttr(&out.Attr, syscall.S_IFREG|0o644, 0, f.mtime)
	return d.NewPersistentInode(ctx, f, gofs.StableAttr{Mode: syscall.S_IFREG, Ino: inodes.Add(1), Gen: 1}), nil, 0, 0
}

func (d *dir) Unlink(ctx context.Context, name string) syscall.Errno {
	if d.GetChild(name) == nil {
		return syscall.ENOENT
	}
	return 0
}

// file is a regular file held in memory.
type file struct {
	gofs.Inode
	node
	data []byte
}

var (
	_ = (gofs.NodeOpener)((*file)(nil))
	_ = (gofs.NodeReader)((*file)(nil))
	_ = (gofs.NodeWriter)((*file)(nil))
	_ = (gofs.NodeFsyncer)((*file)(nil))
	_ = (gofs.NodeFlusher)((*file)(nil))
	_ = (gofs.NodeGetattrer)((*file)(nil))
	_ = (gofs.NodeSetattrer)((*file)(nil))
	_ = (gofs.NodeGetxattrer)((*file)(nil))
	_ = (gofs.NodeSetxattrer)((*file)(nil))
	_ = (gofs.NodeRemovexattrer)((*file)(nil))
	_ = (gofs.NodeListxattrer)((*file)(nil))
)

func (f *file) Open(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	if flags&syscall.O_TRUNC != 0 {
		f.mu.Lock()
		f.data = f.data[:0]
		f.mu.Unlock()
	}
	if rootfsLike {
		return nil, fuse.FOPEN_KEEP_CACHE | fuse.FOPEN_NOFLUSH, 0
	}
	return nil, 0, 0
}

// rootfsLike: -rootfs.
var rootfsLike bool

func (f *file) Read(ctx context.Context, fh gofs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if off >= int64(len(f.data)) {
		return fuse.ReadResultData(nil), 0
	}
	n := copy(dest, f.data[off:])
	return fuse.ReadResultData(dest[:n]), 0
}

func (f *file) Write(ctx context.Context, fh gofs.FileHandle, data []byte, off int64) (uint32, syscall.Errno) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if end := off + int64(len(data)); end > int64(len(f.data)) {
		if end > int64(cap(f.data)) {
			grown := make([]byte, end, 2*end)
			copy(grown, f.data)
			f.data = grown
		}
		f.data = f.data[:end]
	}
	copy(f.data[off:], data)
	f.mtime = time.Now()
	return uint32(len(data)), 0
}

func (f *file) Fsync(ctx context.Context, fh gofs.FileHandle, flags uint32) syscall.Errno { return 0 }

func (f *file) Flush(ctx context.Context, fh gofs.FileHandle) syscall.Errno { return 0 }

func (f *file) Getattr(ctx context.Context, fh gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	f.mu.Lock()
	defer f.mu.Unlock()
	fillAttr(&out.Attr, syscall.S_IFREG|0o644, len(f.data), f.mtime)
	return 0
}

func (f *file) Setattr(ctx context.Context, fh gofs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	if size, ok := in.GetSize(); ok {
		f.mu.Lock()
		if int(size) <= len(f.data) {
			f.data = f.data[:size]
		} else {
			f.data = append(f.data, make([]byte, int(size)-len(f.data))...)
		}
		f.mu.Unlock()
	}
	return f.Getattr(ctx, fh, out)
}
