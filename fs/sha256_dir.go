package fs

import (
	"context"
	"syscall"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/nsfs/nsfs/metadata"
	"github.com/opencontainers/go-digest"
)

// sha256Dir is blobs/sha256: it lists the blobs the namespace holds, and
// looks up every blob it can see (all of the store under the shared
// policy). Creating <hex> ingests a blob; a file of any other name is a
// temporary ingest (temp_ingest.go), which a rename to <hex> commits.
//
//	$ cp layer.tar blobs/sha256/$(sha256sum < layer.tar | cut -d' ' -f1)
//	$ cp other.tar blobs/sha256/0000…0000
//	cp: failed to close 'blobs/sha256/0000…0000': Bad message
//	$ rm blobs/sha256/4b7a…                   # EBUSY while an image uses it
//	$ cp layer.tar blobs/sha256/tmp1 && mv blobs/sha256/tmp1 blobs/sha256/4b7a…
type sha256Dir struct {
	fixedDir
}

var (
	_ = (gofs.InodeEmbedder)((*sha256Dir)(nil))
	_ = (gofs.NodeStatfser)((*sha256Dir)(nil))
	_ = (gofs.NodeGetattrer)((*sha256Dir)(nil))
	_ = (gofs.NodeSetattrer)((*sha256Dir)(nil))
	_ = (gofs.NodeGetxattrer)((*sha256Dir)(nil))
	_ = (gofs.NodeSetxattrer)((*sha256Dir)(nil))
	_ = (gofs.NodeRemovexattrer)((*sha256Dir)(nil))
	_ = (gofs.NodeListxattrer)((*sha256Dir)(nil))
	_ = (gofs.NodeFsyncer)((*sha256Dir)(nil))
	_ = (gofs.NodeLookuper)((*sha256Dir)(nil))
	_ = (gofs.NodeReaddirer)((*sha256Dir)(nil))
	_ = (gofs.NodeOpendirHandler)((*sha256Dir)(nil)) // names_only_dir.go
	_ = (gofs.NodeMkdirer)((*sha256Dir)(nil))
	_ = (gofs.NodeMknoder)((*sha256Dir)(nil))
	_ = (gofs.NodeLinker)((*sha256Dir)(nil))
	_ = (gofs.NodeSymlinker)((*sha256Dir)(nil))
	_ = (gofs.NodeCreater)((*sha256Dir)(nil))
	_ = (gofs.NodeUnlinker)((*sha256Dir)(nil))
	_ = (gofs.NodeRmdirer)((*sha256Dir)(nil))
	_ = (gofs.NodeRenamer)((*sha256Dir)(nil))
)

// blobDigest is the digest a name in blobs/sha256 stands for.
func blobDigest(name string) digest.Digest {
	return digest.NewDigestFromEncoded(digest.SHA256, name)
}

func (d *sha256Dir) display(name string) string {
	return blobPath(d.ns, name)
}

func blobPath(ns nsRef, hex string) string {
	return "ns/" + ns.name + "/blobs/sha256/" + hex
}

// blobNode returns the node of blob dg: the one the tree holds, if any.
func (d *sha256Dir) blobNode(ctx context.Context, name string, dg digest.Digest) *gofs.Inode {
	if ch := d.GetChild(name); ch != nil {
		if _, ok := ch.Operations().(*blobFile); ok {
			return ch
		}
	}
	return d.NewInode(ctx, newBlobFile(d.fsys, d.ns, dg), fileAttr(blobIno(d.ns.id, dg)))
}

func (d *sha256Dir) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	if errno := d.fsys.enter(&d.ns, name); errno != 0 {
		return nil, errno
	}
	if !isBlobName(name) {
		return d.lookupTemp(ctx, name, out)
	}
	dg := blobDigest(name)
	b, err := d.fsys.db.Content().Stat(d.ns.name, dg)
	if err != nil {
		if child := d.ingestingChild(name); metadata.IsNotFound(err) && child != nil {
			// Being ingested: it is there for as long as its writer has it
			// open, also once the kernel's entry expired.
			var attr fuse.AttrOut
			if errno := child.Getattr(ctx, nil, &attr); errno != 0 {
				return nil, errno
			}
			out.Attr = attr.Attr
			return child.EmbeddedInode(), 0
		}
		return nil, lookupErrno("lookup "+d.display(name), err)
	}
	// No cacheName: a blob's name can go without a request through the
	// kernel (the last image that held it was removed in another
	// namespace, or garbage collection), so the kernel asks each time.
	// The alternative, telling it (NotifyEntry), waits for the
	// directory's lock in the kernel, and a daemon killed while it waits
	// can never exit.
	fillBlob(d.fsys, d.ns, &out.Attr, &b)
	return d.blobNode(ctx, name, dg), 0
}

// ingestingChild is the node the tree holds under name if an ingest
// through it is under way.
func (d *sha256Dir) ingestingChild(name string) *blobFile {
	if ch := d.GetChild(name); ch != nil {
		if f, ok := ch.Operations().(*blobFile); ok && f.activeIngest() != nil {
			return f
		}
	}
	return nil
}

func fillBlob(fsys *filesystem, ns nsRef, a *fuse.Attr, b *metadata.Blob) {
	fsys.fillFile(a, ns, blobPerm, b.Size, b.Times.Modified, b.Times.Changed)
}

// Readdir lists the blobs the namespace holds (what rmdir counts).
func (d *sha256Dir) Readdir(ctx context.Context) (gofs.DirStream, syscall.Errno) {
	if errno := d.fsys.enter(&d.ns); errno != 0 {
		return nil, errno
	}
	list, err := d.fsys.db.Content().List(d.ns.name)
	if err != nil {
		return nil, toErrno("readdir ns/"+d.ns.name+"/blobs/sha256", err)
	}
	entries := dirEntries(d.EmbeddedInode(), len(list))
	for _, b := range list {
		entries = append(entries, fuse.DirEntry{Name: b.Digest.Encoded(), Mode: syscall.S_IFREG, Ino: blobIno(d.ns.id, b.Digest)})
	}
	entries = d.appendTemps(entries)
	return gofs.NewListDirStream(entries), 0
}

// Create starts an ingest of the blob the name is the digest of: EEXIST
// when the namespace can already see it (nothing to send), EINVAL for a
// name that is no sha256 digest. Without O_EXCL an existing blob is opened
// instead (for writing: EPERM, blobs are read-only).
func (d *sha256Dir) Create(ctx context.Context, name string, flags uint32, mode uint32, out *fuse.EntryOut) (*gofs.Inode, gofs.FileHandle, uint32, syscall.Errno) {
	if errno := d.fsys.enter(&d.ns, name); errno != 0 {
		return nil, nil, 0, errno
	}
	if !isBlobName(name) {
		return d.createTemp(ctx, name, flags, out)
	}
	dg := blobDigest(name)
	slot, errno := d.fsys.handles.acquire(ctx, "create "+d.display(name))
	if errno != 0 {
		return nil, nil, 0, errno
	}
	defer slot.releaseIfPanicking()
	w, err := d.fsys.db.Content().Writer(d.ns.name, d.ns.id, dg)
	if err != nil {
		slot.release()
		if metadata.IsExists(err) && flags&syscall.O_EXCL == 0 {
			node, errno := d.Lookup(ctx, name, out)
			if errno != 0 {
				return nil, nil, 0, errno
			}
			fh, fuseFlags, errno := node.Operations().(*blobFile).Open(ctx, flags)
			if errno != 0 {
				return nil, nil, 0, errno
			}
			return node, fh, fuseFlags, 0
		}
		return nil, nil, 0, toErrno("create "+d.display(name), err)
	}
	node := d.blobNode(ctx, name, dg)
	ing := node.Operations().(*blobFile).startIngest(ctx, w, slot)
	d.fsys.fillFile(&out.Attr, d.ns, blobPerm, 0, ing.started, ing.started)
	return node, ing, ingestOpenFlags, 0
}

// Unlink makes the namespace drop the blob (EBUSY while one of its images
// uses it). Unlinking a blob still being written ends its ingest.
func (d *sha256Dir) Unlink(ctx context.Context, name string) syscall.Errno {
	if errno := d.fsys.enter(&d.ns, name); errno != 0 {
		return errno
	}
	if !isBlobName(name) {
		return d.unlinkTemp(name)
	}
	var child *blobFile
	if ch := d.GetChild(name); ch != nil {
		child, _ = ch.Operations().(*blobFile)
	}
	dg := blobDigest(name)
	err := d.fsys.db.Content().Delete(d.ns.name, dg)
	if err != nil {
		if metadata.IsNotFound(err) && child != nil && child.abortIngest() {
			return 0
		}
		return lookupErrno("rm "+d.display(name), err)
	}
	return 0
}

// Rmdir: everything in blobs/sha256 is a file.
func (d *sha256Dir) Rmdir(ctx context.Context, name string) syscall.Errno {
	if errno := d.fsys.enter(&d.ns, name); errno != 0 {
		return errno
	}
	if _, err := d.fsys.db.Content().Stat(d.ns.name, blobDigest(name)); err == nil {
		return syscall.ENOTDIR
	}
	if !isBlobName(name) && d.fsys.temps.get(tempKey{d.ns.id, sha256Key, name}) != nil {
		return syscall.ENOTDIR
	}
	return syscall.ENOENT
}
