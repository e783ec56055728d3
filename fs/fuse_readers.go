package fs

import (
	"runtime"
	"sync"
)

// SpareProcs leaves the Go scheduler a P to spare while go-fuse's readers
// wait in read(2) on /dev/fuse, and is called once a server exists.
//
// go-fuse v2.12 keeps up to GOMAXPROCS+1 goroutines (at least 3, at most
// 17) blocked in that read, each holding its P while in the system
// call. With GOMAXPROCS at the CPU count no P is ever idle, so the
// runtime's monitor takes the P of a reader that has waited over 20 µs
// (runtime.retake), hands it to a new thread that finds nothing to do
// and sleeps again, and the reader, woken by the next request, must
// find a P elsewhere: thread wakeups that serve no request, and the
// monitor itself polling every 20 µs. On this 2-CPU machine that was a
// third of the daemon's CPU during `tar -c` of an image (an open and a
// release per file), time taken from tar. With two Ps more than go-fuse's
// readers, one is idle whenever every reader waits, and the monitor
// leaves a waiting reader its P (for up to 10 ms). Compute-bound work
// (decompressing a layer) still runs on as many threads as before plus
// two, which the kernel shares out among the CPUs. Exported for the
// benchmark's bare filesystem (bench/barefs), which serves as nsfs does.
func SpareProcs() {
	spareProcsOnce.Do(func() {
		// go-fuse's Server.maxReaders, from the GOMAXPROCS it saw.
		procs := runtime.GOMAXPROCS(0)
		readers := min(max(procs, 2), 16)
		// Never fewer than it had (over 16 CPUs, go-fuse's readers
		// leave Ps to spare already).
		runtime.GOMAXPROCS(max(procs, readers+2))
	})
}

// Once per process: a second mount in the same process (tests) must
// not raise it again.
var spareProcsOnce sync.Once
