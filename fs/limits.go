package fs

import (
	"context"
	"log"
	"sync"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"
)

// Limits bound what open handles can hold in the daemon, so that no user
// can take it down for the others: handles that hold a descriptor (an
// ingest's temporary file, a blob reader's file) or a buffer (an image
// writer's bytes). Image readers hold neither and are not counted.
//
// A user is a caller's uid. Root, and the uid the daemon runs as, are
// bound by the daemon-wide limits only: either can stop the daemon
// anyway, and without allow_other the daemon's own uid is the only user.
type Limits struct {
	// MaxOpenPerUser bounds one user's open handles (EMFILE beyond, as a
	// process's descriptor table does).
	MaxOpenPerUser int
	// MaxOpen bounds all users' open handles together (ENFILE beyond, as
	// the system's file table does): the daemon's descriptors, less
	// headroom for the store, the FUSE device and the log.
	MaxOpen int
	// MaxBufferedPerUser bounds the bytes one user's image writers buffer;
	// MaxBuffered, all users'. A write or open that would pass either is
	// ENOMEM.
	MaxBufferedPerUser int64
	MaxBuffered        int64
}

// Default buffer bounds: 64 image writers of 4 MiB per user, and 4 users'
// worth in the daemon.
const (
	DefaultMaxBufferedPerUser = 256 << 20
	DefaultMaxBuffered        = 1 << 30
)

// descriptorHeadroom is what MaxOpen leaves of the daemon's descriptors
// for everything that is not a handle: the store, the FUSE device, the
// log, a blob file opened for one read.
const descriptorHeadroom = 256

// DefaultLimits are the limits of a daemon that may have nofile open
// descriptors (its RLIMIT_NOFILE): each user may hold an eighth of them,
// at least 64.
func DefaultLimits(nofile uint64) Limits {
	n := int(min(nofile, 1<<30))
	return Limits{
		MaxOpenPerUser:     max(64, n/8),
		MaxOpen:            max(64, n-descriptorHeadroom),
		MaxBufferedPerUser: DefaultMaxBufferedPerUser,
		MaxBuffered:        DefaultMaxBuffered,
	}
}

// withDefaults fills the zero fields of l from DefaultLimits(nofile).
func (l Limits) withDefaults(nofile uint64) Limits {
	d := DefaultLimits(nofile)
	if l.MaxOpenPerUser <= 0 {
		l.MaxOpenPerUser = d.MaxOpenPerUser
	}
	if l.MaxOpen <= 0 {
		l.MaxOpen = d.MaxOpen
	}
	if l.MaxBufferedPerUser <= 0 {
		l.MaxBufferedPerUser = d.MaxBufferedPerUser
	}
	if l.MaxBuffered <= 0 {
		l.MaxBuffered = d.MaxBuffered
	}
	return l
}

// openFileLimit is the daemon's RLIMIT_NOFILE (its soft limit, what open
// enforces).
func openFileLimit() uint64 {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 1024
	}
	return rl.Cur
}

// handleLimiter counts the handles and buffered bytes of each user, and
// of all together, against Limits.
type handleLimiter struct {
	limits Limits
	exempt func(uid uint32) bool // bound by the daemon-wide limits only

	mu       sync.Mutex
	open     int
	buffered int64
	users    map[uint32]*usage // only users with something open
	logged   time.Time         // the last refusal logged
}

type usage struct {
	open     int
	buffered int64
}

func newHandleLimiter(limits Limits, exempt func(uid uint32) bool) *handleLimiter {
	return &handleLimiter{limits: limits, exempt: exempt, users: map[uint32]*usage{}}
}

// handleSlot is one open handle's share: released exactly once, by
// release (more calls do nothing).
type handleSlot struct {
	limiter *handleLimiter
	uid     uint32

	mu       sync.Mutex
	buffered int64
	released bool
}

// callerUID is the uid of the process that made a request; 0 (root, bound
// by the daemon-wide limits only) when the request names none, which no
// request from the kernel does.
func callerUID(ctx context.Context) uint32 {
	if caller, ok := fuse.FromContext(ctx); ok {
		return caller.Uid
	}
	return 0
}

// acquire takes a slot for a new handle of the caller: EMFILE when the
// caller has MaxOpenPerUser open, ENFILE when everyone together has
// MaxOpen.
func (l *handleLimiter) acquire(ctx context.Context, what string) (*handleSlot, syscall.Errno) {
	return l.acquireUID(callerUID(ctx), what)
}

func (l *handleLimiter) acquireUID(uid uint32, what string) (*handleSlot, syscall.Errno) {
	l.mu.Lock()
	defer l.mu.Unlock()
	u := l.users[uid]
	if u == nil {
		u = &usage{}
	}
	switch {
	case l.open >= l.limits.MaxOpen:
		l.refused("%s: the mount has %d handles open, its limit: ENFILE", what, l.open)
		return nil, syscall.ENFILE
	case !l.exempt(uid) && u.open >= l.limits.MaxOpenPerUser:
		l.refused("%s: uid %d has %d handles open, its limit: EMFILE", what, uid, u.open)
		return nil, syscall.EMFILE
	}
	u.open++
	l.open++
	l.users[uid] = u
	return &handleSlot{limiter: l, uid: uid}, 0
}

// releaseIfPanicking gives the slot back when the operation that took it
// panics (go-fuse answers EIO and serves on, so a lost slot would count
// against the user for good). Deferred right after acquire.
func (s *handleSlot) releaseIfPanicking() {
	if r := recover(); r != nil {
		s.release()
		panic(r)
	}
}

// refused logs a refusal, at most one a minute: a user who keeps hitting
// a limit must not fill the log instead. Called with mu held.
func (l *handleLimiter) refused(format string, args ...any) {
	if now := time.Now(); now.Sub(l.logged) >= time.Minute {
		l.logged = now
		log.Printf("limit reached: "+format+" (later refusals within a minute are not logged)", args...)
	}
}

// setBuffered makes n the bytes the slot's handle buffers: growing past
// MaxBufferedPerUser (for the caller) or MaxBuffered (for everyone) is
// ENOMEM and changes nothing; shrinking always succeeds.
func (s *handleSlot) setBuffered(n int64, what string) syscall.Errno {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.released {
		return 0
	}
	l := s.limiter
	l.mu.Lock()
	defer l.mu.Unlock()
	u := l.users[s.uid]
	delta := n - s.buffered
	if delta > 0 {
		switch {
		case l.buffered+delta > l.limits.MaxBuffered:
			l.refused("%s: image writers of the mount buffer %d bytes, %d more would pass %d: ENOMEM", what, l.buffered, delta, l.limits.MaxBuffered)
			return syscall.ENOMEM
		case !l.exempt(s.uid) && u.buffered+delta > l.limits.MaxBufferedPerUser:
			l.refused("%s: image writers of uid %d buffer %d bytes, %d more would pass %d: ENOMEM", what, s.uid, u.buffered, delta, l.limits.MaxBufferedPerUser)
			return syscall.ENOMEM
		}
	}
	u.buffered += delta
	l.buffered += delta
	s.buffered = n
	return 0
}

// release gives the slot and its bytes back; only the first call counts.
func (s *handleSlot) release() {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.released {
		return
	}
	s.released = true
	l := s.limiter
	l.mu.Lock()
	defer l.mu.Unlock()
	u := l.users[s.uid]
	u.open--
	u.buffered -= s.buffered
	l.open--
	l.buffered -= s.buffered
	if u.open == 0 {
		delete(l.users, s.uid)
	}
}

// usageOf is what uid holds (for tests).
func (l *handleLimiter) usageOf(uid uint32) (open int, buffered int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if u := l.users[uid]; u != nil {
		return u.open, u.buffered
	}
	return 0, 0
}

// total is what everyone holds (for tests).
func (l *handleLimiter) total() (open int, buffered int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.open, l.buffered
}
