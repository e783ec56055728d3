package fs

import (
	"context"
	"syscall"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// The temporary ingests of blobs/sha256 (temp_ingest.go): names that are
// no digest.

func (d *sha256Dir) tempKey(name string) tempKey { return tempKey{d.ns.id, sha256Key, name} }

func (d *sha256Dir) lookupTemp(ctx context.Context, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	t := d.fsys.temps.get(d.tempKey(name))
	if t == nil {
		return nil, syscall.ENOENT
	}
	// No cacheName: once renamed to <hex> the name must be looked up
	// again, to find the blob.
	t.fill(d.fsys, &out.Attr)
	return t.node(ctx, d.EmbeddedInode(), d.fsys), 0
}

// appendTemps adds the directory's temporary ingests to a listing.
func (d *sha256Dir) appendTemps(entries []fuse.DirEntry) []fuse.DirEntry {
	for _, t := range d.fsys.temps.list(d.ns.id, sha256Key) {
		t.mu.Lock()
		name := t.key.name
		t.mu.Unlock()
		entries = append(entries, fuse.DirEntry{Name: name, Mode: syscall.S_IFREG, Ino: t.ino})
	}
	return entries
}

// createTemp starts a temporary ingest called name; one of that name is
// replaced (EEXIST with O_EXCL).
func (d *sha256Dir) createTemp(ctx context.Context, name string, flags uint32, out *fuse.EntryOut) (*gofs.Inode, gofs.FileHandle, uint32, syscall.Errno) {
	if flags&syscall.O_EXCL != 0 && d.fsys.temps.get(d.tempKey(name)) != nil {
		return nil, nil, 0, syscall.EEXIST
	}
	t, errno := d.fsys.newTempIngest(ctx, d.ns, sha256Key, name, d.display(name))
	if errno != 0 {
		return nil, nil, 0, errno
	}
	t.fill(d.fsys, &out.Attr)
	return t.node(ctx, d.EmbeddedInode(), d.fsys), &tempHandle{t: t}, fuse.FOPEN_DIRECT_IO, 0
}

// unlinkTemp removes a temporary ingest and its bytes.
func (d *sha256Dir) unlinkTemp(name string) syscall.Errno {
	t := d.fsys.temps.get(d.tempKey(name))
	if t == nil {
		return syscall.ENOENT
	}
	d.fsys.temps.remove(t)
	return 0
}

// Rename of a temporary ingest: to another name that is no digest it is
// renamed; to <hex> its bytes are committed as that blob, verified
// (EBADMSG when they are another blob's: nothing changes, the temporary
// file stays), with the labels set on it. Writing a blob the namespace holds again this way
// succeeds and changes nothing. A blob itself is never renamed (EPERM).
// RENAME_NOREPLACE: EEXIST when the namespace can see the blob already;
// RENAME_EXCHANGE is EINVAL.
func (d *sha256Dir) Rename(ctx context.Context, name string, newParent gofs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	if errno := d.fsys.enter(&d.ns, name, newName); errno != 0 {
		return errno
	}
	if isBlobName(name) {
		return d.refuse("rename", name, newName)
	}
	t := d.fsys.temps.get(d.tempKey(name))
	if t == nil {
		return syscall.ENOENT
	}
	if flags&^unix.RENAME_NOREPLACE != 0 {
		return syscall.EINVAL
	}
	noReplace := flags&unix.RENAME_NOREPLACE != 0
	dst, ok := newParent.(*sha256Dir)
	if !ok || dst.ns.id != d.ns.id {
		return syscall.EXDEV
	}
	if !isBlobName(newName) {
		return d.fsys.temps.move(t, d.tempKey(newName), noReplace)
	}
	dg := blobDigest(newName)
	if noReplace {
		if _, err := d.fsys.db.Content().Stat(d.ns.name, dg); err == nil {
			return syscall.EEXIST
		}
	}
	gone, err := t.commitAs(dg)
	if gone {
		d.fsys.temps.remove(t)
	}
	if err != nil {
		return toErrno("commit "+d.display(name)+" as "+d.display(newName)+" (rename)", err)
	}
	return 0
}
