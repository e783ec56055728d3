package fs

import (
	"context"
	"syscall"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/nsfs/nsfs/metadata"
)

// imageDirHandle is an open images/ directory, or one below it. Its
// listing is one store snapshot, taken at the first read and again at
// each rewind, and the lookups READDIRPLUS makes of the entries it lists
// are answered from that snapshot, with no store call per entry, for as
// long as the store has not changed since (metadata's CommittedTx): the
// kernel must never be given a removed name or an old size after the
// operation that changed it returned, and a listing of many batches can
// outlast such an operation. Once the store changed, each lookup reads
// the store, as without the handle.
//
//	$ ls -l images/many        # READDIRPLUS: names and attributes, one snapshot
//	$ ls images/many           # READDIR after the first batch (READDIRPLUS_AUTO)
//
// The last listing read is kept (filesystem.lastListing) and shared by
// the next opens of the same directory while the store has not changed:
// ls, then ls -l, or a script listing the same directory again, read the
// store once. One listing, so that what is kept stays bounded.
//
// go-fuse serialises the calls on one handle (it holds the handle's lock
// around Readdirent, Seekdir and Lookup), so the handle needs no lock.
type imageDirHandle struct {
	dir *imageDir
	// entries is the snapshot (nil until the first read); next indexes
	// the entry Readdirent returns next, counting "." and ".." as 0 and 1.
	entries []metadata.Entry
	loaded  bool
	// asOf is the store's CommittedTx before the snapshot was read: the
	// snapshot is current while CommittedTx still says asOf.
	asOf uint64
	next int
	// last is the entry Readdirent returned last: go-fuse looks up only
	// that one.
	last *metadata.Entry
	// current says whether the snapshot was current when checked in the
	// request whose context is checkedIn (see currentIn).
	current   bool
	checkedIn context.Context
	// told is the snapshot the directory's kernelListing was told this
	// handle lists, if toldAny.
	told    uint64
	toldAny bool
}

var (
	_ = (gofs.NodeOpendirHandler)((*imageDir)(nil))
	_ = (gofs.FileReaddirenter)((*imageDirHandle)(nil))
	_ = (gofs.FileLookuper)((*imageDirHandle)(nil))
	_ = (gofs.FileSeekdirer)((*imageDirHandle)(nil))
	_ = (gofs.FileReleasedirer)((*imageDirHandle)(nil))
)

// dotEntries is how many entries come before the snapshot's: "." and "..".
const dotEntries = 2

// OpendirHandle opens the directory for listing; the snapshot waits for
// the first read, as a listing taken at open would show what changed in
// between as missing. The kernel may serve the listing from its cache
// instead, if nothing changed since it read it (kernel_listing.go).
func (d *imageDir) OpendirHandle(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	if errno := d.fsys.enter(&d.ns); errno != 0 {
		return nil, 0, errno
	}
	now, err := d.fsys.db.CommittedTx()
	if err != nil {
		return nil, 0, toErrno("opendir "+d.display(d.path), err)
	}
	return &imageDirHandle{dir: d}, d.listing.open(now), 0
}

// dirListing is a snapshot of one directory below images/, read when the
// store's CommittedTx was asOf. Its entries are shared by the handles
// that list it and never changed.
type dirListing struct {
	ns      uint64 // the namespace's ID
	path    string
	asOf    uint64
	entries []metadata.Entry
}

func (h *imageDirHandle) load() syscall.Errno {
	d := h.dir
	if errno := d.fsys.enter(&d.ns); errno != 0 {
		return errno
	}
	asOf, err := d.fsys.db.CommittedTx()
	if err != nil {
		return toErrno("readdir "+d.display(d.path), err)
	}
	if l := d.fsys.lastListing.Load(); l != nil && l.ns == d.ns.id && l.path == d.path && l.asOf == asOf {
		h.use(l.entries, asOf)
		return 0
	}
	list, err := d.fsys.db.Images().ReadDir(d.ns.name, d.path)
	if err != nil {
		return toErrno("readdir "+d.display(d.path), err)
	}
	d.fsys.lastListing.Store(&dirListing{ns: d.ns.id, path: d.path, asOf: asOf, entries: list})
	h.use(list, asOf)
	return 0
}

// use makes entries, read at asOf, the handle's snapshot, and tells
// the directory's kernelListing: the kernel may keep what it lists.
func (h *imageDirHandle) use(entries []metadata.Entry, asOf uint64) {
	h.entries, h.loaded, h.asOf, h.checkedIn = entries, true, asOf, nil
	h.dir.listing.listed(asOf, h.told, h.toldAny)
	h.told, h.toldAny = asOf, true
}

// Readdirent returns ".", "..", then the snapshot's entries; the offset of
// an entry is its index plus one, what Seekdir takes back.
func (h *imageDirHandle) Readdirent(ctx context.Context) (*fuse.DirEntry, syscall.Errno) {
	if !h.loaded {
		if errno := h.load(); errno != 0 {
			return nil, errno
		}
	}
	i := h.next
	if i >= dotEntries+len(h.entries) {
		return nil, 0
	}
	h.next++
	d := h.dir
	switch i {
	case 0, 1:
		h.last = nil
		dots := dirEntries(d.EmbeddedInode(), 0)
		de := dots[i]
		de.Off = uint64(h.next)
		return &de, 0
	}
	e := &h.entries[i-dotEntries]
	h.last = e
	de := &fuse.DirEntry{Name: e.Name, Off: uint64(h.next)}
	if e.IsDir {
		de.Mode, de.Ino = syscall.S_IFDIR, d.fsys.inodes.dir(d.ns.id, imageDirKey(e.Path))
	} else {
		de.Mode, de.Ino = syscall.S_IFREG, recordIno(e.Image.ID)
	}
	return de, 0
}

// Lookup answers READDIRPLUS's lookup of the entry Readdirent returned
// last from the snapshot while it is current; otherwise, and for any
// other name (go-fuse promises none), it looks the name up in the store.
func (h *imageDirHandle) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	d := h.dir
	e := h.last
	if e == nil || e.Name != name || !h.currentIn(ctx) {
		return d.Lookup(ctx, name, out)
	}
	if errno := d.fsys.enter(&d.ns, name); errno != 0 {
		return nil, errno
	}
	if e.IsDir {
		return d.dirNode(ctx, e.Path, out), 0
	}
	return d.imageNode(ctx, name, e.Image, out), 0
}

// currentIn says whether the snapshot is current, as of the start of
// the READDIRPLUS request whose context ctx is: go-fuse gives each
// request a context of its own and the lookups of all its entries, so
// the store is asked once per batch. Once per batch is enough: the
// kernel holds the directory's lock shared while it waits for the batch,
// and a change through it in this directory waits for that lock; a
// change that comes otherwise (a write of index.json) tells the kernel
// afterwards (its notification waits for the same lock), and an image
// rewritten meanwhile has the kernel discard the older attributes the
// batch brings (it counts attribute versions).
func (h *imageDirHandle) currentIn(ctx context.Context) bool {
	if ctx != h.checkedIn {
		now, err := h.dir.fsys.db.CommittedTx()
		h.current, h.checkedIn = err == nil && now == h.asOf, ctx
	}
	return h.current
}

// Seekdir moves to offset off (an index plus one, as Readdirent numbers
// them); 0 is a rewind, which takes a new snapshot, as rewinddir(3) must
// show entries made since the directory was opened. An offset past the
// snapshot's end is its end: it was read from an older snapshot (a
// telldir before a rewind, the kernel's own listing before its cache was
// dropped), and a listing that runs across a removal must end, not fail.
func (h *imageDirHandle) Seekdir(ctx context.Context, off uint64) syscall.Errno {
	if off == 0 {
		h.loaded, h.entries = false, nil
	} else if !h.loaded {
		if errno := h.load(); errno != 0 {
			return errno
		}
	}
	h.next, h.last = int(min(off, uint64(dotEntries+len(h.entries)))), nil
	return 0
}

func (h *imageDirHandle) Releasedir(ctx context.Context, releaseFlags uint32) {
	h.dir.listing.released(h.told, h.toldAny)
	h.entries, h.last = nil, nil
}
