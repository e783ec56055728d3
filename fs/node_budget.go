package fs

import (
	"context"
	"log"
	"os"
	"os/signal"
	"runtime/debug"
	"sync"
	"syscall"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
)

// DefaultNodeBudget is how many image nodes the daemon keeps once the
// kernel's entries for them have expired (Config.NodeBudget). 16,384 nodes
// are about 7 MB with go-fuse's share; `ls -l` of a 10,000-ref directory
// stays within it, so that listing it again finds its nodes.
const DefaultNodeBudget = 16384

// nodeBudget bounds the image nodes the daemon holds, whatever the number
// of images the kernel has seen. The kernel keeps an inode for every name
// it was given until memory pressure, and go-fuse a node for each (ours,
// about 224 bytes, and go-fuse's node table and child maps, about 180),
// so `ls -lR` of 100,000 images would keep 100,000 nodes for good. The
// kernel's entry for an image expires entryTimeout after its lookup: from
// then on the node buys nothing, as its next use is a LOOKUP anyway.
//
// Each image node (an image file, or a directory below images/: a tree
// of many ref prefixes has as many of those) is counted from its creation
// (a lookup, READDIRPLUS, create, link, mkdir) to go-fuse's OnForget. Over the budget, a background
// goroutine picks, clock-wise, nodes whose kernel entry expired and that
// hold nothing of a writer, and asks the kernel to forget them
// (FUSE_NOTIFY_PRUNE): the kernel drops the inode if nothing uses it (no
// open file, no cwd, no dentry in use) and sends FORGET, and go-fuse
// drops the node. An image in use is left alone by the kernel; its node
// is asked again on a later round. Past hardLimit (a walk that looks up
// tens of thousands of images a second makes that many in the second an
// entry lasts), nodes whose entry is still fresh go too: the kernel then
// looks their names up again, as it would a second later. After a prune
// of many nodes the freed heap is handed back to the system at once
// rather than by the collector's pace (returnMemory).
//
//	$ ls -lR /mnt > /dev/null        # 100,000 images: 100,000 lookups
//	$ kill -USR1 $(pidof nsfs)       # the daemon's log then says:
//	node budget: 16384 image nodes held (budget 16384, at most 38102); the kernel was asked to forget 83616
//
// The prune notification takes no directory lock in the kernel (an entry
// notification does, and waits uninterruptibly for a request on that
// directory: a daemon killed then could never exit), so it is safe from
// this goroutine at any time. A kernel without it (FUSE protocol before
// 7.45; this machine's 6.18 has it) refuses the first: the budget is then
// off, and the log says so once.
//
// What it keeps per node: a slot in ring (24 bytes) and the slot's
// number, in padding of imageFile (still 224 bytes) and in imageDir.
type nodeBudget struct {
	limit int
	kick  chan struct{} // a node over the budget was added

	mu   sync.Mutex
	ring []budgetEntry
	free []int32 // unused slots of ring
	held int     // slots in use
	peak int     // the most held at once
	// asked counts the nodes the kernel was asked to forget and whose
	// FORGET has not come: they no longer count against the budget (the
	// kernel sends FORGETs between requests, well after the prune).
	asked int
	hand  int // where the clock's hand is
	// pruned counts the requests to forget a node sent to the kernel.
	pruned uint64
	off    bool // the kernel has no prune notification
	start  time.Time
	// returned is when freed memory was last handed back, and
	// returnPending that it is about to be again (returnMemory).
	returned      time.Time
	returnPending bool
}

// hardLimit is how far over its budget b may go with fresh nodes.
func (b *nodeBudget) hardLimit() int { return b.limit + b.limit/2 }

// budgeted is a node the budget counts: an image file, or a directory
// below images/ (a ref prefix), of which a tree of many prefixes makes as
// many as images.
type budgeted interface {
	gofs.InodeEmbedder
	// slot is where the node keeps the number of its slot in the ring.
	slot() *int32
	idle() bool
}

// budgetEntry is a node and when the kernel was last given its name.
type budgetEntry struct {
	node budgeted
	// used is when (in milliseconds since the budget's start) the kernel
	// was last given the node, its entry then valid for entryTimeout, or
	// when the kernel was asked to forget it.
	used uint32
	// asked: the kernel was asked to forget the node at used.
	asked bool
}

// noSlot marks a node the budget does not count (not yet, or no longer).
const noSlot = -1

func newNodeBudget(limit int) *nodeBudget {
	if limit <= 0 {
		limit = DefaultNodeBudget
	}
	return &nodeBudget{limit: limit, kick: make(chan struct{}, 1), start: time.Now()}
}

func (b *nodeBudget) now() uint32 { return uint32(time.Since(b.start).Milliseconds()) }

// used records that the kernel was just given f's name (a lookup answered
// with it, a create, a link): f is counted from now on, and its entry is
// fresh. Called by the request handlers; never blocks.
func (b *nodeBudget) used(f budgeted) {
	now := b.now()
	b.mu.Lock()
	if at := *f.slot(); at != noSlot && int(at) < len(b.ring) && b.ring[at].node == f {
		e := &b.ring[at]
		e.used = now
		if e.asked {
			// The kernel kept it (in use) and gave it out again.
			e.asked = false
			b.asked--
		}
		b.mu.Unlock()
		return
	}
	var slot int32
	if n := len(b.free); n > 0 {
		slot = b.free[n-1]
		b.free = b.free[:n-1]
	} else {
		slot = int32(len(b.ring))
		b.ring = append(b.ring, budgetEntry{})
	}
	b.ring[slot] = budgetEntry{node: f, used: now}
	*f.slot() = slot
	b.held++
	b.peak = max(b.peak, b.held)
	over := b.held > b.limit
	b.mu.Unlock()
	if over {
		select {
		case b.kick <- struct{}{}:
		default:
		}
	}
}

// forgotten records that go-fuse dropped f's node.
func (b *nodeBudget) forgotten(f budgeted) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.dropLocked(f)
}

func (b *nodeBudget) dropLocked(f budgeted) {
	slot := *f.slot()
	if slot == noSlot || int(slot) >= len(b.ring) || b.ring[slot].node != f {
		return
	}
	if b.ring[slot].asked {
		b.asked--
	}
	b.ring[slot] = budgetEntry{}
	b.free = append(b.free, slot)
	*f.slot() = noSlot
	b.held--
}

// counts are the nodes held, the most held at once, and how often the
// kernel was asked to forget one.
func (b *nodeBudget) counts() (held, peak int, pruned uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.held, b.peak, b.pruned
}

// pruneBatch is how many nodes one notification names.
const pruneBatch = 512

// run keeps the nodes within the budget until stop is closed: woken by a
// node over it, and then every retry while over it (the nodes just looked
// up become candidates entryTimeout later).
func (b *nodeBudget) run(root *gofs.Inode, stop <-chan struct{}) {
	const retry = 100 * time.Millisecond
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		select {
		case <-stop:
			return
		case <-b.kick:
		case <-timer.C:
		}
		if b.prune(root) {
			timer.Reset(retry)
		}
	}
}

// prune asks the kernel to forget, in batches, as many nodes as are over
// the budget, not counting those it was asked to forget already; it says
// whether the nodes are still over it.
func (b *nodeBudget) prune(root *gofs.Inode) (over bool) {
	var asked int
	defer func() { b.returnMemory(asked) }()
	b.mu.Lock()
	b.forgetOldAsksLocked()
	b.mu.Unlock()
	for {
		b.mu.Lock()
		excess := b.held - b.asked - b.limit
		fresh := b.held-b.asked > b.hardLimit()
		b.mu.Unlock()
		if excess <= 0 {
			break
		}
		nodes := b.candidates(min(pruneBatch, excess), fresh)
		if len(nodes) == 0 {
			break
		}
		asked += len(nodes)
		if errno := root.NotifyPrune(nodes); errno != 0 {
			b.mu.Lock()
			b.off = true
			b.mu.Unlock()
			log.Printf("node budget: the kernel cannot be asked to forget nodes (FUSE_NOTIFY_PRUNE: %v): the daemon keeps a node for every image the kernel holds", errno)
			return false
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.held > b.limit && !b.off
}

// forgetOldAsksLocked counts again, against the budget, the nodes asked
// for longer than entryTimeout ago whose FORGET has not come: the kernel
// kept them (in use when asked, or looked up again since). Without it
// they would count as leaving for good, and a budget whose nodes were all
// asked would never ask again.
func (b *nodeBudget) forgetOldAsksLocked() {
	if b.asked == 0 {
		return
	}
	now := b.now()
	expired := uint32(entryTimeout / time.Millisecond)
	for i := range b.ring {
		if e := &b.ring[i]; e.asked && now-e.used >= expired {
			e.asked = false
			b.asked--
		}
	}
}

// candidates takes up to max nodes, in the clock's order, whose kernel
// entry has expired (with fresh, any) and that hold nothing of a writer,
// and marks them asked. A node still there entryTimeout after it was
// asked was kept by the kernel (in use): it is a candidate again.
func (b *nodeBudget) candidates(max int, fresh bool) []*gofs.Inode {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.off {
		return nil
	}
	now := b.now()
	expired := uint32(entryTimeout / time.Millisecond)
	var nodes []*gofs.Inode
	for seen := 0; seen < len(b.ring) && len(nodes) < max; seen++ {
		if b.hand >= len(b.ring) {
			b.hand = 0
		}
		e := &b.ring[b.hand]
		b.hand++
		if e.node == nil || (!fresh && now-e.used < expired) {
			continue
		}
		if e.asked && now-e.used < expired {
			continue // asked already; its FORGET may still come
		}
		if e.asked {
			e.asked = false
			b.asked--
		}
		f := e.node
		n := f.EmbeddedInode()
		if _, parent := n.Parent(); parent == nil {
			// Not in the tree: unlinked (its handles keep it), or a node
			// a concurrent lookup of the same image made in vain. Not
			// ours to count; if it comes back, used counts it again. A
			// node used just now may be one go-fuse has yet to link
			// (used runs before the lookup returns): dropped then, it
			// would stay in the tree uncounted, and keep its directories.
			if now-e.used >= expired {
				b.dropLocked(f)
			}
			continue
		}
		if !f.idle() {
			continue
		}
		e.used, e.asked = now, true
		b.asked++
		nodes = append(nodes, n)
	}
	b.pruned += uint64(len(nodes))
	return nodes
}

// returnMemory hands the heap that the nodes just forgotten held back to
// the system after a prune that asked for at least a quarter of the
// budget: the collector would keep it for the daemon's next growth, and
// the daemon's memory is what the budget is for. It runs a little later
// (the kernel sends its FORGETs between requests), at most once every few
// seconds (it is a full collection), and once more after the last of a
// series of prunes.
func (b *nodeBudget) returnMemory(asked int) {
	const every = 2 * time.Second
	if asked < b.limit/4 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.returnPending {
		return
	}
	b.returnPending = true
	time.AfterFunc(max(200*time.Millisecond, time.Until(b.returned.Add(every))), func() {
		b.mu.Lock()
		b.returnPending, b.returned = false, time.Now()
		b.mu.Unlock()
		debug.FreeOSMemory()
	})
}

// idle says the node holds nothing that must outlive it: a stored image
// with no writer's state (a new image, open writers, a pending mtime).
func (f *imageFile) idle() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.life == stored && f.writes == nil
}

var (
	_ = (gofs.NodeOnForgetter)((*imageFile)(nil))
	_ = (gofs.NodeOnForgetter)((*imageDir)(nil))
)

// OnForget: go-fuse dropped the node (the kernel forgot the inode).
func (f *imageFile) OnForget() { f.fsys.nodes.forgotten(f) }

func (f *imageFile) slot() *int32 { return &f.budgetSlot }

// OnForget: go-fuse dropped the node (the kernel forgot the inode).
func (d *imageDir) OnForget() { d.fsys.nodes.forgotten(d) }

func (d *imageDir) slot() *int32 { return &d.budgetSlot }

// idle: a directory holds nothing that must outlive its node (what its
// kernelListing knows goes with the kernel's inode, and the kernel keeps
// a directory that is open, a working directory, or holds a name in use).
func (d *imageDir) idle() bool { return true }

// logNodesOnSignal writes the budget's counts to the log on every
// SIGUSR1, until stop is closed (what a test or an operator can read
// without a profiler).
func (b *nodeBudget) logNodesOnSignal(stop <-chan struct{}) {
	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	go func() {
		defer signal.Stop(usr1)
		for {
			select {
			case <-stop:
				return
			case <-usr1:
				held, peak, pruned := b.counts()
				log.Printf("node budget: %d image nodes held (budget %d, at most %d); the kernel was asked to forget %d", held, b.limit, peak, pruned)
			}
		}
	}()
}

// newImageNode makes the node of image file f in d, which the budget
// counts from now on.
func (d *imageDir) newImageNode(ctx context.Context, f *imageFile) *gofs.Inode {
	n := d.NewInode(ctx, f, fileAttr(recordIno(f.id)))
	d.fsys.nodes.used(f)
	return n
}

// startNodeBudget keeps root's image nodes within the budget while the
// server serves.
func startNodeBudget(root *rootDir, stop <-chan struct{}) {
	b := root.fsys.nodes
	go b.run(root.EmbeddedInode(), stop)
	b.logNodesOnSignal(stop)
}
