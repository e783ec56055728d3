package fs

import (
	"testing"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"
)

const (
	keepFlags = fuse.FOPEN_CACHE_DIR | fuse.FOPEN_KEEP_CACHE
	dropFlags = fuse.FOPEN_CACHE_DIR | dropKernelListing
)

// handle is one open of a directory, as imageDirHandle tells its
// kernelListing.
type handle struct {
	k       *kernelListing
	told    uint64
	toldAny bool
}

func (h *handle) list(tx uint64) {
	h.k.listed(tx, h.told, h.toldAny)
	h.told, h.toldAny = tx, true
}

func (h *handle) close() { h.k.released(h.told, h.toldAny) }

func openDir(t *testing.T, k *kernelListing, now uint64, want uint32) *handle {
	t.Helper()
	if got := k.open(now); got != want {
		t.Fatalf("open at tx %d: flags %#x, want %#x", now, got, want)
	}
	return &handle{k: k}
}

func TestKernelListingKeptOnlyWhileTheStoreIsUnchanged(t *testing.T) {
	var k kernelListing
	h := openDir(t, &k, 5, dropFlags) // nothing read yet
	h.list(5)
	h.close()
	openDir(t, &k, 5, keepFlags).close()
	h = openDir(t, &k, 6, dropFlags) // a commit since
	h.list(6)
	h.close()
	openDir(t, &k, 6, keepFlags).close()
	// An open that was kept but whose listing the kernel asked again
	// (its cache was dropped) after a commit: it lists tx 7, the cache
	// may hold both.
	h = openDir(t, &k, 6, keepFlags)
	h.list(7)
	h.close()
	openDir(t, &k, 7, dropFlags).close()
}

func TestKernelListingKeptOnlyWhileItsEntriesAreFresh(t *testing.T) {
	var k kernelListing
	h := openDir(t, &k, 5, dropFlags)
	h.list(5)
	h.close()
	k.read = time.Now().Add(-keptListingWindow) // as if read that long ago
	h = openDir(t, &k, 5, dropFlags)
	h.list(5)
	h.close()
	openDir(t, &k, 5, keepFlags).close()
}

// A handle still open when the cache is dropped keeps handing the kernel
// entries of its snapshot, which then count for the new cache.
func TestKernelListingCountsHandlesOpenAcrossADrop(t *testing.T) {
	var k kernelListing
	old := openDir(t, &k, 5, dropFlags)
	old.list(5)
	h := openDir(t, &k, 6, dropFlags) // old is still listing tx 5
	h.list(6)
	h.close()
	openDir(t, &k, 6, dropFlags).close() // old's entries may be in it
	old.close()
	h = openDir(t, &k, 6, dropFlags)
	h.list(6)
	h.close()
	openDir(t, &k, 6, keepFlags).close()

	// A rewind to a newer snapshot replaces the handle's old one.
	h = openDir(t, &k, 6, keepFlags)
	h.list(6)
	r := openDir(t, &k, 6, keepFlags)
	r.list(6)
	r.list(7) // rewound after a commit
	openDir(t, &k, 7, dropFlags).close()
	h.close()
	r.close()
	if len(k.listing) != 0 {
		t.Errorf("after every handle closed, listing counts %v", k.listing)
	}
}
