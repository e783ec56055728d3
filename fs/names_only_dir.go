package fs

import (
	"context"
	"syscall"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// namesOnlyHandle lists a directory whose entries READDIRPLUS should not
// look up: the mount asks READDIRPLUS for every batch (mount.go), and
// go-fuse answers it with a Lookup per entry, which here would cost more
// than it saves. Its Lookup declines, and the entry goes to the kernel
// with node ID 0, which the kernel takes as a name without attributes
// (fuse_direntplus_link), as in a READDIR.
//
//	$ ls blobs/sha256      # no store read per blob: a blob's name is never kept anyway
//	$ ls rootfs            # no image's files are read to list its name
type namesOnlyHandle struct {
	list   func(context.Context) (gofs.DirStream, syscall.Errno)
	stream gofs.DirStream // nil until the first read and after a rewind
}

var (
	_ = (gofs.FileReaddirenter)((*namesOnlyHandle)(nil))
	_ = (gofs.FileLookuper)((*namesOnlyHandle)(nil))
	_ = (gofs.FileSeekdirer)((*namesOnlyHandle)(nil))
	_ = (gofs.FileReleasedirer)((*namesOnlyHandle)(nil))
)

func (h *namesOnlyHandle) Readdirent(ctx context.Context) (*fuse.DirEntry, syscall.Errno) {
	if h.stream == nil {
		s, errno := h.list(ctx)
		if errno != 0 {
			return nil, errno
		}
		h.stream = s
	}
	if !h.stream.HasNext() {
		return nil, 0
	}
	e, errno := h.stream.Next()
	return &e, errno
}

// Lookup gives READDIRPLUS no attributes; a lookup of the name itself
// (LOOKUP) reaches the node's Lookup, as always.
func (h *namesOnlyHandle) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	return nil, syscall.ENOENT
}

// Seekdir moves to offset off; 0 is a rewind, which lists again, as
// rewinddir(3) must show entries made since the directory was opened.
func (h *namesOnlyHandle) Seekdir(ctx context.Context, off uint64) syscall.Errno {
	if off == 0 && h.stream != nil {
		h.stream.Close()
		h.stream = nil
	}
	if h.stream == nil {
		s, errno := h.list(ctx)
		if errno != 0 {
			return errno
		}
		h.stream = s
	}
	if sd, ok := h.stream.(gofs.FileSeekdirer); ok {
		return sd.Seekdir(ctx, off)
	}
	return syscall.ENOTSUP
}

func (h *namesOnlyHandle) Releasedir(ctx context.Context, releaseFlags uint32) {
	if h.stream != nil {
		h.stream.Close()
	}
}

// OpendirHandle lists blobs by name only: a blob's name is never kept by
// the kernel (sha256Dir.Lookup), so attributes with the listing would
// save no LOOKUP and cost a store read each.
func (d *sha256Dir) OpendirHandle(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	if errno := d.fsys.enter(&d.ns); errno != 0 {
		return nil, 0, errno
	}
	return &namesOnlyHandle{list: d.Readdir}, 0, 0
}

// OpendirHandle lists images by name only: the attributes of rootfs/<ref>
// are those of its merged tree, which a listing must not build for every
// image.
func (d *rootfsDir) OpendirHandle(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	if errno := d.fsys.enter(&d.ns); errno != 0 {
		return nil, 0, errno
	}
	return &namesOnlyHandle{list: d.Readdir}, 0, 0
}
