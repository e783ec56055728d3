package fs

import (
	"context"
	"syscall"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// scratchDir is a directory a tool made in a namespace's root to write
// an OCI layout's files before renaming them into place (oras-go's
// ingest/, umoci's .umoci-…/). It holds temporary files only
// (layout_temp.go), kept in memory: no record of the store, so it never
// keeps the namespace's rmdir from succeeding, and a remount forgets it.
//
//	$ mkdir /mnt/ns/dev/ingest
//	$ cp layer.tar /mnt/ns/dev/ingest/4b7a…_123
//	$ mv /mnt/ns/dev/ingest/4b7a…_123 /mnt/ns/dev/blobs/sha256/4b7a…
//	$ rmdir /mnt/ns/dev/ingest
type scratchDir struct {
	gofs.Inode
	dirBase // with ns, the namespace
	noXattrs
	name string
	made time.Time
}

var (
	_ = (gofs.InodeEmbedder)((*scratchDir)(nil))
	_ = (gofs.NodeStatfser)((*scratchDir)(nil))
	_ = (gofs.NodeGetattrer)((*scratchDir)(nil))
	_ = (gofs.NodeSetattrer)((*scratchDir)(nil))
	_ = (gofs.NodeGetxattrer)((*scratchDir)(nil))
	_ = (gofs.NodeSetxattrer)((*scratchDir)(nil))
	_ = (gofs.NodeRemovexattrer)((*scratchDir)(nil))
	_ = (gofs.NodeListxattrer)((*scratchDir)(nil))
	_ = (gofs.NodeFsyncer)((*scratchDir)(nil))
	_ = (gofs.NodeLookuper)((*scratchDir)(nil))
	_ = (gofs.NodeReaddirer)((*scratchDir)(nil))
	_ = (gofs.NodeMkdirer)((*scratchDir)(nil))
	_ = (gofs.NodeMknoder)((*scratchDir)(nil))
	_ = (gofs.NodeLinker)((*scratchDir)(nil))
	_ = (gofs.NodeSymlinker)((*scratchDir)(nil))
	_ = (gofs.NodeCreater)((*scratchDir)(nil))
	_ = (gofs.NodeUnlinker)((*scratchDir)(nil))
	_ = (gofs.NodeRmdirer)((*scratchDir)(nil))
	_ = (gofs.NodeRenamer)((*scratchDir)(nil))
)

// scratchInoKey is the inode-table key of scratch directory name (a
// name of the root, so it cannot collide with "images" or "blobs/…").
func scratchInoKey(name string) string { return "scratch:" + name }

func (d *scratchDir) ino() uint64 { return d.fsys.inodes.dir(d.ns.id, scratchInoKey(d.name)) }

func (d *scratchDir) tempKey(name string) tempKey { return tempKey{d.ns.id, d.name, name} }

func (d *scratchDir) display(name string) string {
	return "ns/" + d.ns.name + "/" + d.name + "/" + name
}

// live: ENOENT once the directory was removed (its node can outlive it).
func (d *scratchDir) live(names ...string) syscall.Errno {
	if errno := d.fsys.enter(&d.ns, names...); errno != 0 {
		return errno
	}
	if _, ok := d.fsys.scratch.get(scratchKey{d.ns.id, d.name}); !ok {
		return syscall.ENOENT
	}
	return 0
}

func (d *scratchDir) Getattr(ctx context.Context, fh gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	if errno := d.live(); errno != 0 {
		return errno
	}
	d.fsys.fillDir(&out.Attr, d.ns, d.made, d.made)
	out.Attr.Ino = d.ino()
	return 0
}

func (d *scratchDir) Setattr(ctx context.Context, fh gofs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	return setattrDir(in, out, d)
}

func (d *scratchDir) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	if errno := d.live(name); errno != 0 {
		return nil, errno
	}
	t := d.fsys.temps.get(d.tempKey(name))
	if t == nil {
		return nil, syscall.ENOENT
	}
	t.fill(d.fsys, &out.Attr)
	return t.node(ctx, d.EmbeddedInode(), d.fsys), 0
}

func (d *scratchDir) Readdir(ctx context.Context) (gofs.DirStream, syscall.Errno) {
	if errno := d.live(); errno != 0 {
		return nil, errno
	}
	temps := d.fsys.temps.list(d.ns.id, d.name)
	entries := dirEntries(d.EmbeddedInode(), len(temps))
	for _, t := range temps {
		t.mu.Lock()
		name := t.key.name
		t.mu.Unlock()
		entries = append(entries, fuse.DirEntry{Name: name, Mode: syscall.S_IFREG, Ino: t.ino})
	}
	return gofs.NewListDirStream(entries), 0
}

func (d *scratchDir) Create(ctx context.Context, name string, flags uint32, mode uint32, out *fuse.EntryOut) (*gofs.Inode, gofs.FileHandle, uint32, syscall.Errno) {
	if errno := d.live(name); errno != 0 {
		return nil, nil, 0, errno
	}
	return createTemp(ctx, d.fsys, d.EmbeddedInode(), d.ns, d.tempKey(name), flags, d.display(name), out)
}

func (d *scratchDir) Unlink(ctx context.Context, name string) syscall.Errno {
	if errno := d.live(name); errno != 0 {
		return errno
	}
	t := d.fsys.temps.get(d.tempKey(name))
	if t == nil {
		return syscall.ENOENT
	}
	d.fsys.temps.remove(t)
	return 0
}

func (d *scratchDir) Rename(ctx context.Context, name string, newParent gofs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	if errno := d.live(name, newName); errno != 0 {
		return errno
	}
	t := d.fsys.temps.get(d.tempKey(name))
	if t == nil {
		return syscall.ENOENT
	}
	return d.fsys.renameTemp(processOf(ctx), d.ns, t, newParent, newName, flags)
}
