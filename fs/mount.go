package fs

import (
	"os"
	"sync"
	"sync/atomic"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/nsfs/nsfs/metadata"
	"github.com/opencontainers/go-digest"
)

// Config is what the mount command chooses.
type Config struct {
	// AllowOther lets other users use the mount (allow_other); the kernel
	// then checks mode bits (default_permissions).
	AllowOther bool
	// Debug logs every FUSE request.
	Debug bool
}

// Invalidator tells the kernel about changes that do not come through it.
// Most notifications go through one background goroutine: a notification
// sent from inside a request handler for the same directory deadlocks
// (the kernel holds the directory's lock while it waits for the handler);
// see BlobReleased and filesystem.notify for the exceptions.
//
// Its BlobReleased method is metadata.Options.OnBlobReleased, which is why
// it exists before the DB is opened and the mount made:
//
//	inval := fs.NewInvalidator()
//	db, err := metadata.Open(root, metadata.Options{OnBlobReleased: inval.BlobReleased})
//	server, err := fs.Mount(mountpoint, db, inval, fs.Config{})
type Invalidator struct {
	queue chan func()
	stop  chan struct{} // closed once the server has stopped
	root  atomic.Pointer[gofs.Inode]

	mu       sync.Mutex
	unlinked map[string]int // "ns\x00digest" being unlinked from blobs/sha256 of ns
}

// releaseWait bounds how long BlobReleased waits for the kernel.
const releaseWait = 100 * time.Millisecond

// NewInvalidator starts the goroutine that sends notifications; it ends
// when the server that Mount made stops.
func NewInvalidator() *Invalidator {
	v := &Invalidator{queue: make(chan func(), 4096), stop: make(chan struct{}), unlinked: map[string]int{}}
	go func() {
		for {
			select {
			case fn := <-v.queue:
				fn()
			case <-v.stop:
				return
			}
		}
	}()
	return v
}

// post queues fn without ever blocking the caller (a request handler, or
// metadata right after a commit): with the queue full, fn gets its own
// goroutine.
func (v *Invalidator) post(fn func()) {
	select {
	case <-v.stop: // no kernel to tell any more
	case v.queue <- fn:
	default:
		go fn()
	}
}

// BlobReleased is called by metadata after namespace ns stopped holding
// blob d. The kernel drops its cached entries for blobs/sha256/<hex> in
// every namespace, not only ns (the blob may have left the store, and
// others saw it through the sharing policy), so that the next stat asks
// the store: `rm` of the last holder, then `stat` in another namespace, is
// ENOENT.
//
// It is called inside the handler that released the blob, and waits for
// the kernel, so that the caches are right when that operation returns —
// but at most releaseWait: two handlers that release blobs in each other's
// namespaces would otherwise wait for each other's directory locks.
// Only names the kernel knows are notified (go-fuse's tree holds every
// name the kernel has looked up), and not the entry of a blob that is
// being unlinked from ns itself: the kernel drops that one, and holds its
// directory until the handler returns.
func (v *Invalidator) BlobReleased(ns string, d digest.Digest) {
	root := v.root.Load()
	if root == nil {
		return
	}
	namespaces := root.GetChild(namespacesName)
	if namespaces == nil {
		return
	}
	hex := d.Encoded()
	var dirs []*gofs.Inode
	for name, dir := range namespaces.Children() {
		for _, step := range []string{blobsName, sha256Name} {
			if dir != nil {
				dir = dir.GetChild(step)
			}
		}
		if dir == nil || dir.GetChild(hex) == nil || name == ns && v.isUnlinking(ns, d) {
			continue
		}
		dirs = append(dirs, dir)
	}
	// Room for every answer, so that a notifier still running after the
	// timeout can finish and end.
	done := make(chan struct{}, len(dirs))
	for _, dir := range dirs {
		go func() {
			dir.NotifyEntry(hex)
			done <- struct{}{}
		}()
	}
	n := len(dirs)
	timeout := time.NewTimer(releaseWait)
	defer timeout.Stop()
	for ; n > 0; n-- {
		select {
		case <-done:
		case <-timeout.C:
			return
		}
	}
}

// unlinking marks blob d as being unlinked from blobs/sha256 of ns, until
// the returned func is called.
func (v *Invalidator) unlinking(ns string, d digest.Digest) func() {
	key := ns + "\x00" + string(d)
	v.mu.Lock()
	v.unlinked[key]++
	v.mu.Unlock()
	return func() {
		v.mu.Lock()
		if v.unlinked[key]--; v.unlinked[key] == 0 {
			delete(v.unlinked, key)
		}
		v.mu.Unlock()
	}
}

func (v *Invalidator) isUnlinking(ns string, d digest.Digest) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.unlinked[ns+"\x00"+string(d)] > 0
}

// forgetName takes a file the store does not have (a creation that failed
// or was abandoned) out of the tree and out of the kernel's cache.
//
// It is called from the Invalidator, or from the handler of a close (see
// filesystem.notify); never with a lock of ours held.
func forgetName(n *gofs.Inode) {
	name, parent := n.Parent()
	if parent == nil {
		return
	}
	if parent.GetChild(name) == n {
		parent.RmChild(name)
	}
	// NotifyDelete names the inode: if the name was created again
	// meanwhile (another inode), the kernel leaves it alone.
	parent.NotifyDelete(name, n)
}

// Operations that commit, as the log names them.
const (
	opClose   = "close"
	opFsync   = "fsync"
	opRelease = "release"
)

// notify sends a notification. now is for the handlers of close (FLUSH):
// the kernel holds no lock of the file or its directory while it waits
// for them, so the kernel's cache is right when close returns (a cp that
// retries at once must not find the name it failed to create). Every
// other caller posts to the Invalidator: during FSYNC the kernel holds
// the file's inode lock, which the notification needs (deadlock).
func (f *filesystem) notify(now bool, fn func()) {
	if now {
		fn()
		return
	}
	f.inval.post(fn)
}

// notifyEntry makes the kernel look n's name up again.
func notifyEntry(n *gofs.Inode) {
	if name, parent := n.Parent(); parent != nil {
		parent.NotifyEntry(name)
	}
}

// Mount serves db at mountpoint, until the server is unmounted. inval may
// be nil when nothing else needs to invalidate (tests).
func Mount(mountpoint string, db *metadata.DB, inval *Invalidator, cfg Config) (*fuse.Server, error) {
	if inval == nil {
		inval = NewInvalidator()
	}
	root := newRoot(db, inval)
	server, err := gofs.Mount(mountpoint, root, options(db, cfg))
	if err != nil {
		close(inval.stop)
		return nil, err
	}
	inval.root.Store(root.EmbeddedInode())
	go func() {
		server.Wait()
		close(inval.stop)
	}()
	return server, nil
}

func newRoot(db *metadata.DB, inval *Invalidator) *rootDir {
	fsys := &filesystem{
		db:      db,
		inodes:  newInodeTable(),
		inval:   inval,
		uid:     uint32(os.Getuid()),
		gid:     uint32(os.Getgid()),
		started: time.Now(),
	}
	return &rootDir{dirBase: dirBase{nodeBase{fsys}}}
}

// options are the mount's options; see FUSE-NOTES.md for why.
func options(db *metadata.DB, cfg Config) *gofs.Options {
	second := time.Second
	// Negative entries are not cached: a blob can become visible through
	// another namespace without any request on this one.
	var noNegative time.Duration
	opts := &gofs.Options{
		EntryTimeout:    &second,
		AttrTimeout:     &second,
		NegativeTimeout: &noNegative,
		RootStableAttr:  &gofs.StableAttr{Ino: rootIno, Gen: generation},
		UID:             uint32(os.Getuid()),
		GID:             uint32(os.Getgid()),
	}
	opts.MountOptions = fuse.MountOptions{
		Name:   "nsfs", // /proc/mounts shows fuse.nsfs
		FsName: db.Root(),
		// READDIRPLUS makes go-fuse call Lookup for every entry of every
		// listing: about 5x slower for plain ls.
		DisableReadDirPlus: true,
		DirectMount:        os.Geteuid() == 0,
		AllowOther:         cfg.AllowOther,
		MaxWrite:           1 << 20,
		// O_TRUNC arrives with OPEN instead of as a separate SETATTR with
		// no handle, so that a handle knows it starts empty. Image readers
		// use direct I/O (imageFile.Open), which refuses shared mmap
		// without DIRECT_IO_ALLOW_MMAP.
		ExtraCapabilities: fuse.CAP_ATOMIC_O_TRUNC | fuse.CAP_DIRECT_IO_ALLOW_MMAP,
		// security.* xattrs (the kernel asks for security.capability on
		// every write) are answered ENODATA without reaching the nodes.
		IgnoreSecurityLabels: true,
		Debug:                cfg.Debug,
	}
	if cfg.AllowOther {
		opts.MountOptions.Options = append(opts.MountOptions.Options, "default_permissions")
	}
	return opts
}
