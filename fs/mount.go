package fs

import (
	"log"
	"os"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/nsfs/nsfs/metadata"
)

// Config is what the mount command chooses.
type Config struct {
	// AllowOther lets other users use the mount (allow_other); the kernel
	// then checks mode bits (default_permissions).
	AllowOther bool
	// Debug logs every FUSE request.
	Debug bool
	// Limits bound what users' open handles hold in the daemon; zero
	// fields are DefaultLimits of the daemon's RLIMIT_NOFILE.
	Limits Limits
	// NodeBudget is how many image nodes the daemon keeps once their
	// kernel entries expired (node_budget.go); 0 is DefaultNodeBudget.
	NodeBudget int
}

// invalidator tells the kernel about changes that do not come through it:
// a name whose creation failed at close, an image whose bytes changed.
// Notifications go through one background goroutine: one sent from inside
// a request handler for the same directory deadlocks (the kernel holds
// the directory's lock while it waits for the handler); see
// filesystem.notify for the one exception.
//
// Blob names are not among them: the kernel never keeps a blob's name
// (sha256Dir.Lookup), so that when a blob goes without a request through
// the kernel (released by another namespace, or collected as garbage)
// there is nothing to tell it. An entry notification waits in the kernel
// for the directory's lock, uninterruptibly, and a daemon killed while a
// request holds that lock waiting for it could then never exit.
type invalidator struct {
	queue chan func()
	stop  chan struct{} // closed once the server has stopped
}

// newInvalidator starts the goroutine that sends notifications; it ends
// when the server stops.
func newInvalidator() *invalidator {
	v := &invalidator{queue: make(chan func(), 4096), stop: make(chan struct{})}
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

// post queues fn without ever blocking the caller (a request handler):
// with the queue full, fn gets its own goroutine.
func (v *invalidator) post(fn func()) {
	select {
	case <-v.stop: // no kernel to tell any more
	case v.queue <- fn:
	default:
		go fn()
	}
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

// Mount serves db at mountpoint, until the server is unmounted.
func Mount(mountpoint string, db *metadata.DB, cfg Config) (*fuse.Server, error) {
	inval := newInvalidator()
	root := newRoot(db, inval, cfg.Limits.withDefaults(openFileLimit()))
	root.fsys.nodes = newNodeBudget(cfg.NodeBudget)
	// What gofs.Mount does, with the negative entries cacheMiss marks.
	opts := MountOptions(db.Root(), cfg)
	server, err := fuse.NewServer(negativeEntries{dirCacheFlags{gofs.NewNodeFS(root, opts)}}, mountpoint, &opts.MountOptions)
	if err == nil {
		go server.Serve()
		err = server.WaitMount()
	}
	if err != nil {
		close(inval.stop)
		return nil, err
	}
	SpareProcs()
	startNodeBudget(root, inval.stop)
	go func() {
		server.Wait()
		close(inval.stop)
	}()
	return server, nil
}

func newRoot(db *metadata.DB, inval *invalidator, limits Limits) *rootDir {
	fsys := &filesystem{
		db:      db,
		inodes:  newInodeTable(),
		inval:   inval,
		uid:     uint32(os.Getuid()),
		gid:     uint32(os.Getgid()),
		started: time.Now(),
		nodes:   newNodeBudget(0),
	}
	fsys.handles = newHandleLimiter(limits, func(uid uint32) bool { return uid == 0 || uid == fsys.uid })
	return &rootDir{dirBase: dirBase{nodeBase: nodeBase{fsys}}}
}

// MountOptions are the mount's options (fsName is what /proc/mounts shows
// as the source); the comments on each say why. They are exported for the
// benchmark's bare in-memory filesystem (bench/barefs), which mounts with
// the same options so that its timings differ from nsfs's only by the
// store.
func MountOptions(fsName string, cfg Config) *gofs.Options {
	second := time.Second
	// Negative entries are cached only where a node says so (cacheMiss):
	// a blob can become visible through another namespace without any
	// request on this one.
	var noNegative time.Duration
	opts := &gofs.Options{
		// No EntryTimeout: each node says how long the kernel may keep
		// the name it answers (cacheName, 1 s); blob names, never.
		AttrTimeout:     &second,
		NegativeTimeout: &noNegative,
		RootStableAttr:  &gofs.StableAttr{Ino: rootIno, Gen: generation},
		UID:             uint32(os.Getuid()),
		GID:             uint32(os.Getgid()),
	}
	opts.MountOptions = fuse.MountOptions{
		Name:   "nsfs", // /proc/mounts shows fuse.nsfs
		FsName: fsName,
		// READDIRPLUS answers the stats that follow a listing (ls -l, a
		// program's loop of lstats) with the listing, for every batch:
		// without READDIRPLUS_AUTO, which asks for it only for a
		// directory's first batch and after batches whose entries were
		// looked up before the next batch was read. What a names-only
		// listing then costs, a node and a kernel inode per entry, an
		// images/ directory saves by letting the kernel keep its
		// listing (kernel_listing.go) and answering the lookups from
		// the listing's own snapshot (imageDirHandle); directories
		// whose lookups cost more list names only (namesOnlyHandle).
		DisableReadDirPlus: false,
		// A record the start-up checks could not see is damaged (bbolt
		// panics on it): that request fails, the daemon serves on, and
		// the log says what to run instead of dumping a stack.
		PanicHandler: func(r any) fuse.Status {
			log.Printf("a request failed reading the store (%v): meta.db may be damaged; unmount, then run nsfs fsck --root STORE", r)
			return fuse.EIO
		},
		DirectMount: os.Geteuid() == 0,
		AllowOther:  cfg.AllowOther,
		MaxWrite:    1 << 20,
		// O_TRUNC arrives with OPEN instead of as a separate SETATTR with
		// no handle, so that a handle knows it starts empty. Image readers
		// use direct I/O (imageFile.Open), which refuses shared mmap
		// without DIRECT_IO_ALLOW_MMAP.
		ExtraCapabilities: fuse.CAP_ATOMIC_O_TRUNC | fuse.CAP_DIRECT_IO_ALLOW_MMAP,
		// security.* xattrs reach the nodes, which answer EOPNOTSUPP as
		// for every name outside user. (go-fuse would answer ENODATA,
		// which makes ls -l ask again for every file).
		IgnoreSecurityLabels: false,
		// The kernel keeps symlink targets in its page cache: the only
		// symlinks are below rootfs/<ref>/, which never change.
		EnableSymlinkCaching: true,
		Debug:                cfg.Debug,
	}
	if cfg.AllowOther {
		opts.MountOptions.Options = append(opts.MountOptions.Options, "default_permissions")
	}
	return opts
}
