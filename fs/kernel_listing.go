package fs

import (
	"sync"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"
)

// The kernel's readdir cache. An open directory whose reply carries
// FOPEN_CACHE_DIR has the kernel keep, in the directory's page cache, the
// entries READDIR and READDIRPLUS return to it (names, not attributes),
// and serve a later listing from there without asking the daemon, once a
// listing was read to its end. An open without FOPEN_KEEP_CACHE drops
// what was kept first. The kernel itself drops it when a change made
// through it (create, unlink, rename, link, mkdir, rmdir in the
// directory) bumps the directory's version, at the next listing from its
// start.
//
//	$ ls images/many     # READDIRPLUS: names with their attributes; kept
//	$ ls images/many     # within keptListingWindow, unchanged: no request
//	$ sleep 1; ls -l images/many   # READDIRPLUS again, entries fresh
//
// Changes that do not come through the kernel on that directory (a write
// of index.json, the nsfs CLI, gc) the kernel cannot see: an open keeps
// the kernel's listing only while the store has committed nothing since
// every entry in it was read (metadata's CommittedTx), so that a listing
// never shows a name removed by an operation that returned before the
// opendir. And only while the entries the listing handed the kernel are
// fresh: served from the cache, a listing refreshes no entry, and the
// lstats that follow would each be a LOOKUP once they expired; a listing
// the daemon answers again refreshes them all with READDIRPLUS. A rewind
// of a directory already open sends no OPENDIR: for it, a write of
// index.json drops the kernel's listing itself (forgetListings).

// keptListingWindow is how long after it was read a listing may be
// served from the kernel's cache: its entries live entryTimeout from the
// read, and the stats that follow a listing need the rest.
const keptListingWindow = entryTimeout * 3 / 4

// dropKernelListing, in the flags a directory's OpendirHandle returns,
// asks for FOPEN_CACHE_DIR without FOPEN_KEEP_CACHE: go-fuse adds
// FOPEN_KEEP_CACHE to FOPEN_CACHE_DIR, and dirCacheFlags takes both this
// bit and FOPEN_KEEP_CACHE out of the reply. No FOPEN_* flag uses it.
const dropKernelListing = 1 << 31

// dirCacheFlags turns dropKernelListing into the open reply the kernel
// understands.
type dirCacheFlags struct {
	fuse.RawFileSystem
}

func (w dirCacheFlags) OpenDir(cancel <-chan struct{}, in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	status := w.RawFileSystem.OpenDir(cancel, in, out)
	if out.OpenFlags&dropKernelListing != 0 {
		out.OpenFlags &^= dropKernelListing | fuse.FOPEN_KEEP_CACHE
	}
	return status
}

// kernelListing is what the daemon knows of the kernel's cache of one
// directory's listing: which store snapshots its entries came from since
// the last open that dropped it, and when the first of them was read.
// Entries reach the cache only through handles of the directory, so the
// handles report each snapshot they list (listed) and their end
// (released).
type kernelListing struct {
	mu sync.Mutex
	// asOf is the snapshot (CommittedTx) of every entry in the kernel's
	// cache since the last drop, if any was read (read not zero).
	asOf uint64
	read time.Time // when the first of those entries was read
	// mixed: entries of two snapshots may be in the cache.
	mixed bool
	// listing counts the open handles that have read a snapshot, by
	// snapshot: they may still hand the kernel entries of it.
	listing map[uint64]int
}

// open decides whether an open of the directory, with the store at tx
// now, may use the kernel's cached listing, and returns the open flags
// that say so. Any other open drops the kernel's cache; what handles
// already open list after that still reaches the new cache.
func (k *kernelListing) open(now uint64) uint32 {
	k.mu.Lock()
	defer k.mu.Unlock()
	if !k.mixed && !k.read.IsZero() && k.asOf == now && time.Since(k.read) < keptListingWindow {
		return fuse.FOPEN_CACHE_DIR | fuse.FOPEN_KEEP_CACHE
	}
	k.read, k.mixed = time.Time{}, false
	for tx := range k.listing {
		k.note(tx)
	}
	return fuse.FOPEN_CACHE_DIR | dropKernelListing
}

// listed records that a handle read the snapshot at tx and will hand the
// kernel entries of it, after the snapshot at was if had (a rewind).
func (k *kernelListing) listed(tx uint64, was uint64, had bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if had {
		k.forget(was)
	}
	if k.listing == nil {
		k.listing = make(map[uint64]int)
	}
	k.listing[tx]++
	k.note(tx)
}

// released records that a handle that read the snapshot at tx, if had,
// was closed.
func (k *kernelListing) released(tx uint64, had bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if had {
		k.forget(tx)
	}
}

func (k *kernelListing) forget(tx uint64) {
	if k.listing[tx]--; k.listing[tx] <= 0 {
		delete(k.listing, tx)
	}
}

func (k *kernelListing) note(tx uint64) {
	switch {
	case k.mixed:
	case k.read.IsZero():
		k.asOf, k.read = tx, time.Now()
	case k.asOf != tx:
		k.mixed = true
	}
}
