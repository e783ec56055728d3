package fs

import (
	"context"
	"sync"
	"syscall"
	"testing"

	"github.com/hanwen/go-fuse/v2/fuse"
)

const daemonUID = 500 // the uid the daemon runs as, in these tests

func testLimiter(l Limits) *handleLimiter {
	return newHandleLimiter(l, func(uid uint32) bool { return uid == 0 || uid == daemonUID })
}

func uidContext(uid uint32) context.Context {
	return fuse.NewContext(context.Background(), &fuse.Caller{Owner: fuse.Owner{Uid: uid}, Pid: 1})
}

func mustAcquire(t *testing.T, l *handleLimiter, uid uint32) *handleSlot {
	t.Helper()
	s, errno := l.acquire(uidContext(uid), "test")
	if errno != 0 {
		t.Fatalf("uid %d: acquire: %v", uid, errno)
	}
	return s
}

func TestDefaultLimitsFollowTheDescriptorLimit(t *testing.T) {
	for _, c := range []struct {
		nofile          uint64
		perUser, allFor int
	}{
		{1024, 128, 768},
		{20000, 2500, 19744},
		{1 << 20, 1 << 17, 1<<20 - 256},
		{256, 64, 64}, // never below 64
	} {
		l := DefaultLimits(c.nofile)
		if l.MaxOpenPerUser != c.perUser || l.MaxOpen != c.allFor {
			t.Errorf("nofile %d: per user %d, all %d; want %d, %d", c.nofile, l.MaxOpenPerUser, l.MaxOpen, c.perUser, c.allFor)
		}
		if l.MaxBufferedPerUser != 256<<20 || l.MaxBuffered != 1<<30 {
			t.Errorf("nofile %d: buffered %d per user, %d in all", c.nofile, l.MaxBufferedPerUser, l.MaxBuffered)
		}
	}
	l := Limits{MaxOpenPerUser: 3}.withDefaults(1024)
	if l.MaxOpenPerUser != 3 || l.MaxOpen != 768 {
		t.Errorf("withDefaults kept %+v, want the per-user limit 3 and the rest defaults", l)
	}
}

// A user at its limit gets EMFILE; other users, root and the daemon's own
// uid go on; everyone together stops at the daemon-wide limit (ENFILE),
// root too.
func TestHandleLimiterPerUserAndDaemonWide(t *testing.T) {
	l := testLimiter(Limits{MaxOpenPerUser: 2, MaxOpen: 5, MaxBufferedPerUser: 1, MaxBuffered: 1})
	a1, a2 := mustAcquire(t, l, 1000), mustAcquire(t, l, 1000)
	if _, errno := l.acquire(uidContext(1000), "test"); errno != syscall.EMFILE {
		t.Fatalf("uid 1000 over its limit: %v, want EMFILE", errno)
	}
	b := mustAcquire(t, l, 1001)
	r1, r2 := mustAcquire(t, l, 0), mustAcquire(t, l, daemonUID)
	if open, _ := l.total(); open != 5 {
		t.Fatalf("%d handles counted, want 5", open)
	}
	for _, uid := range []uint32{0, daemonUID, 1002} {
		if _, errno := l.acquire(uidContext(uid), "test"); errno != syscall.ENFILE {
			t.Errorf("uid %d with the daemon at its limit: %v, want ENFILE", uid, errno)
		}
	}
	// A refused acquire counts nothing.
	if open, _ := l.usageOf(1002); open != 0 {
		t.Errorf("uid 1002 holds %d after refusals", open)
	}
	r1.release()
	if _, errno := l.acquire(uidContext(1000), "test"); errno != syscall.EMFILE {
		t.Errorf("uid 1000, still at its own limit: %v, want EMFILE", errno)
	}
	a1.release()
	a3 := mustAcquire(t, l, 1000)
	for _, s := range []*handleSlot{a2, a3, b, r2} {
		s.release()
	}
	if open, buffered := l.total(); open != 0 || buffered != 0 {
		t.Errorf("after every release: %d handles, %d bytes", open, buffered)
	}
	if len(l.users) != 0 {
		t.Errorf("users left in the table: %v", l.users)
	}
}

// Release counts once, however often it is called.
func TestHandleSlotReleasesOnce(t *testing.T) {
	l := testLimiter(Limits{MaxOpenPerUser: 2, MaxOpen: 10, MaxBufferedPerUser: 100, MaxBuffered: 1000})
	keep := mustAcquire(t, l, 1000)
	s := mustAcquire(t, l, 1000)
	if errno := s.setBuffered(40, "test"); errno != 0 {
		t.Fatal(errno)
	}
	s.release()
	s.release()
	var none *handleSlot
	none.release() // a handle without a slot
	if open, buffered := l.usageOf(1000); open != 1 || buffered != 0 {
		t.Errorf("after a double release: uid 1000 holds %d handles, %d bytes; want 1, 0", open, buffered)
	}
	// Bytes set after the release are not counted (a release racing a write).
	if errno := s.setBuffered(60, "test"); errno != 0 {
		t.Errorf("setBuffered after release: %v", errno)
	}
	if _, buffered := l.total(); buffered != 0 {
		t.Errorf("%d bytes counted for a released slot", buffered)
	}
	keep.release()
}

// Buffered bytes: growing past the user's or the daemon's limit is ENOMEM
// and changes nothing; shrinking always succeeds; root is bound by the
// daemon-wide limit only.
func TestHandleSlotBufferedBytes(t *testing.T) {
	l := testLimiter(Limits{MaxOpenPerUser: 10, MaxOpen: 100, MaxBufferedPerUser: 100, MaxBuffered: 250})
	a, b := mustAcquire(t, l, 1000), mustAcquire(t, l, 1000)
	if errno := a.setBuffered(60, "test"); errno != 0 {
		t.Fatal(errno)
	}
	if errno := b.setBuffered(41, "test"); errno != syscall.ENOMEM {
		t.Errorf("101 bytes for uid 1000: %v, want ENOMEM", errno)
	}
	if errno := b.setBuffered(40, "test"); errno != 0 {
		t.Errorf("100 bytes for uid 1000: %v", errno)
	}
	if errno := a.setBuffered(61, "test"); errno != syscall.ENOMEM {
		t.Errorf("a grows past the limit: %v, want ENOMEM", errno)
	}
	if _, buffered := l.usageOf(1000); buffered != 100 {
		t.Errorf("uid 1000 buffers %d after a refused growth, want 100", buffered)
	}
	if errno := a.setBuffered(10, "test"); errno != 0 {
		t.Errorf("shrink: %v", errno)
	}
	root := mustAcquire(t, l, 0)
	if errno := root.setBuffered(201, "test"); errno != syscall.ENOMEM {
		t.Errorf("root past the daemon's limit (50+201 > 250): %v, want ENOMEM", errno)
	}
	if errno := root.setBuffered(200, "test"); errno != 0 {
		t.Errorf("root with 200 bytes, over the per-user limit, within the daemon's: %v", errno)
	}
	other := mustAcquire(t, l, 1001)
	if errno := other.setBuffered(1, "test"); errno != syscall.ENOMEM {
		t.Errorf("uid 1001 with the daemon full: %v, want ENOMEM", errno)
	}
	a.release()
	if errno := other.setBuffered(10, "test"); errno != 0 {
		t.Errorf("uid 1001 once a was released: %v", errno)
	}
	for _, s := range []*handleSlot{b, root, other} {
		s.release()
	}
	if open, buffered := l.total(); open != 0 || buffered != 0 {
		t.Errorf("after every release: %d handles, %d bytes", open, buffered)
	}
}

// Users acquiring, buffering and releasing at once never pass a limit,
// and leave nothing counted (run with -race).
func TestHandleLimiterConcurrent(t *testing.T) {
	const users, perUser, workers, rounds = 4, 3, 8, 300
	l := testLimiter(Limits{MaxOpenPerUser: perUser, MaxOpen: 10, MaxBufferedPerUser: 1000, MaxBuffered: 3000})
	var wg sync.WaitGroup
	errs := make(chan string, users*workers)
	for u := 0; u < users; u++ {
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				uid := uint32(1000 + u)
				for i := 0; i < rounds; i++ {
					s, errno := l.acquire(uidContext(uid), "test")
					if errno == syscall.EMFILE || errno == syscall.ENFILE {
						continue
					}
					if errno != 0 {
						errs <- errno.Error()
						return
					}
					if errno := s.setBuffered(int64(100*(i%5)), "test"); errno != 0 && errno != syscall.ENOMEM {
						errs <- errno.Error()
					}
					open, buffered := l.usageOf(uid)
					allOpen, allBuffered := l.total()
					if open > perUser || buffered > 1000 || allOpen > 10 || allBuffered > 3000 {
						errs <- "a limit was passed"
					}
					s.setBuffered(0, "test")
					s.release()
					s.release()
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	if open, buffered := l.total(); open != 0 || buffered != 0 {
		t.Errorf("after every release: %d handles, %d bytes", open, buffered)
	}
}

// An operation that panics after taking a slot gives it back (go-fuse
// answers EIO and serves on); one that returns keeps it for its handle.
func TestHandleSlotReleasedWhenItsOpenPanics(t *testing.T) {
	l := testLimiter(Limits{MaxOpenPerUser: 2, MaxOpen: 10, MaxBufferedPerUser: 100, MaxBuffered: 1000})
	open := func(fail bool) {
		s := mustAcquire(t, l, 1000)
		defer s.releaseIfPanicking()
		if fail {
			panic("damaged page")
		}
	}
	func() {
		defer func() {
			if r := recover(); r != "damaged page" {
				t.Errorf("recovered %v, want the open's own panic", r)
			}
		}()
		open(true)
	}()
	if n, _ := l.usageOf(1000); n != 0 {
		t.Fatalf("after a panicking open: uid 1000 holds %d handles, want 0", n)
	}
	open(false)
	if n, _ := l.usageOf(1000); n != 1 {
		t.Fatalf("after an open that returned: uid 1000 holds %d handles, want 1", n)
	}
}
