// Command nsfs-bench measures what nsfs costs per operation, side by side
// with two floors on the same machine in the same run (`make bench`):
//
//   - tmpfs: the kernel alone, no FUSE (mount -t tmpfs);
//   - barefs: FUSE with no store, an in-memory go-fuse filesystem
//     (bench/barefs) mounted with nsfs's own options (fs.MountOptions),
//     so that nsfs/barefs is what the store adds to FUSE itself.
//
// Method. It needs root (tmpfs, FUSE). It mounts the three (nsfs as the
// real daemon, `bin/nsfs mount --root TMP MNT`, each FUSE daemon its own
// process) under a fresh temporary directory, lays out the same tree on
// each (a "namespace" is a directory made with mkdir, a "label" a user.*
// xattr, an "image" a file holding a manifest), and runs every workload on
// each in turn, nsfs, tmpfs, barefs, nsfs, tmpfs, barefs, … for -rounds
// rounds; the table shows the median of the rounds. Times are wall-clock
// per operation, from the calling process through the system calls; the
// machines are shared and noisy, so the ratios within one run are what
// counts, not the absolute numbers. Everything it mounted is unmounted at
// the end, also on failure or interrupt.
//
// The nsfs store is filled before it is mounted, through package metadata
// directly (metadata/bench_test.go, TestPopulateBenchStore, built as
// bin/metadata.test): 10,000 refs through FUSE would cost one fsynced
// commit each. tmpfs and barefs are filled through their mounts.
//
// Listings that stat each entry run "cold" on the FUSE filesystems: each
// starts once the kernel's cached entries and attributes from the previous
// round have expired (1 s), so the numbers include the lookups a first
// `ls -l` makes. `stat, cached` is the opposite: the same name over and
// over, answered from the kernel's cache. A names-only listing runs both
// ways: five at once, which the kernel may serve from the listing it
// keeps, and cold.
//
// Daemon RSS is measured on a second store of 100,000 images in 100
// namespaces (filled the same way, then mounted): after every namespace's
// images/ was listed and each image lstat'ed through the mount, VmRSS and
// VmHWM from /proc/PID/status.
//
//	$ make bench
//	$ bin/nsfs-bench -rounds 3 -only 'label|stat'      # a subset
//	$ bin/nsfs-bench -cpuprofile /tmp/nsfs.prof -only 'ls -l'
//	$ go tool pprof -top bin/nsfs /tmp/nsfs.prof
package main

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nsfs/nsfs/mountinfo"
	"golang.org/x/sys/unix"
)

var (
	nsfsBin     = flag.String("nsfs", "bin/nsfs", "the nsfs binary")
	barefsBin   = flag.String("barefs", "bin/barefs", "the bare in-memory FUSE filesystem (bench/barefs)")
	populateBin = flag.String("populate", "bin/metadata.test", "the metadata test binary that fills a store (go test -c ./metadata)")
	rounds      = flag.Int("rounds", 5, "rounds of every workload on each filesystem (medians are shown)")
	only        = flag.String("only", "", "run only the workloads whose name matches this `regexp`")
	skipRSS     = flag.Bool("skip-rss", false, "skip the 100,000-image RSS measurement")
	skipPull    = flag.Bool("skip-pull", false, "skip the pull rows (local docker-registry)")
	cpuProfile  = flag.String("cpuprofile", "", "have the nsfs daemon write a CPU profile to `FILE`")
	workDir     = flag.String("workdir", "", "where to make the stores and mountpoints (default: a new directory in $TMPDIR)")
)

func main() {
	log.SetFlags(0)
	log.SetPrefix("nsfs-bench: ")
	flag.Parse()
	if os.Geteuid() != 0 {
		log.Fatal("needs root (mount -t tmpfs, FUSE mounts)")
	}
	err := run()
	cleanups.run()
	if err != nil {
		log.Fatal(err)
	}
}

// cleanups undo what the run did (daemons, mounts, the work directory),
// last first: at the end, on failure, or on SIGINT/SIGTERM.
var cleanups cleanupStack

type cleanupStack struct {
	mu  sync.Mutex
	fns []func()
}

func (c *cleanupStack) push(fn func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.fns = append(c.fns, fn)
}

func (c *cleanupStack) run() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := len(c.fns) - 1; i >= 0; i-- {
		c.fns[i]()
	}
	c.fns = nil
}

func run() error {
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		sig := <-signals
		log.Printf("%v: unmounting everything", sig)
		cleanups.run()
		os.Exit(1)
	}()

	var filter *regexp.Regexp
	if *only != "" {
		var err error
		if filter, err = regexp.Compile(*only); err != nil {
			return fmt.Errorf("-only: %v", err)
		}
	}
	for _, bin := range []*string{nsfsBin, barefsBin, populateBin} {
		abs, err := filepath.Abs(*bin)
		if err != nil {
			return err
		}
		if _, err := os.Stat(abs); err != nil {
			return fmt.Errorf("%v (make bench builds it)", err)
		}
		*bin = abs
	}

	dir := *workDir
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp("", "nsfs-bench-"); err != nil {
			return err
		}
		cleanups.push(func() { os.RemoveAll(dir) })
	}
	started := time.Now()

	targets, err := startTargets(dir)
	if err != nil {
		return err
	}
	nsfs := targets[0]

	var rows []row
	for _, w := range workloads() {
		if filter != nil && !filter.MatchString(w.name) {
			continue
		}
		r, err := w.measure(targets)
		if err != nil {
			return fmt.Errorf("%s: %v", w.name, err)
		}
		rows = append(rows, r)
	}
	var pulls pullRows
	if !*skipPull && (filter == nil || filter.MatchString("pull")) {
		if pulls.result, err = measurePulls(dir, nsfs); err != nil {
			// The other rows stand without them: report, and go on.
			pulls.status = "failed: " + err.Error()
			log.Printf("pull rows: %v", err)
		}
	} else {
		pulls.status = "skipped"
	}
	rootfs := rootfsRows{status: "skipped"}
	if !*skipRootfs && (filter == nil || filter.MatchString("rootfs")) {
		if rootfs, err = measureRootfs(dir); err != nil {
			rootfs.status = "failed: " + err.Error() // the other rows stand without them
			log.Printf("rootfs rows: %v", err)
		}
	}
	if !*skipRSS && (filter == nil || filter.MatchString("daemon RSS")) {
		r, err := measureRSS(dir)
		if err != nil {
			return fmt.Errorf("daemon RSS: %v", err)
		}
		rows = append(rows, r)
	}
	for _, t := range targets {
		t.stop()
	}
	committing.stop()
	printTable(os.Stdout, rows, pulls, time.Since(started))
	rootfs.print(os.Stdout)
	return nil
}

// startTargets mounts the three filesystems measured side by side, nsfs,
// tmpfs and barefs (in that order), each holding the same image.
func startTargets(dir string) ([]*target, error) {
	// The nsfs store is filled before its mount (see the package doc).
	store := filepath.Join(dir, "nsfs-store")
	storeDir = store
	if err := populate(store, "listing"); err != nil {
		return nil, err
	}
	nsfs := &target{name: "nsfs", mnt: filepath.Join(dir, "nsfs")}
	args := []string{*nsfsBin, "mount", "--root", store}
	if *cpuProfile != "" {
		args = append(args, "--cpuprofile", *cpuProfile)
	}
	if err := nsfs.start(append(args, nsfs.mnt), filepath.Join(dir, "nsfs.log")); err != nil {
		return nil, err
	}
	tmpfs := &target{name: "tmpfs", mnt: filepath.Join(dir, "tmpfs")}
	if err := tmpfs.mountTmpfs(); err != nil {
		return nil, err
	}
	bare := &target{name: "barefs", mnt: filepath.Join(dir, "barefs")}
	if err := bare.start([]string{*barefsBin, bare.mnt}, filepath.Join(dir, "barefs.log")); err != nil {
		return nil, err
	}
	targets := []*target{nsfs, tmpfs, bare}
	// barefs again, its mkdir, rmdir and xattr changes each making the
	// disk writes of a one-page bbolt commit in the store's directory: the
	// commit rows' floor, measured as one (see workload.fsyncs).
	committing = &target{name: "barefs+commits", mnt: filepath.Join(dir, "barefs-commits")}
	if err := committing.start([]string{*barefsBin, "-commits", store, committing.mnt}, filepath.Join(dir, "barefs-commits.log")); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(committing.path("default"), 0o755); err != nil {
		return nil, err
	}

	manifest, err := os.ReadFile(nsfs.path("default/images/src"))
	if err != nil {
		return nil, fmt.Errorf("read the image nsfs was filled with: %v", err)
	}
	for _, t := range targets[1:] {
		if err := t.layOut(manifest); err != nil {
			return nil, err
		}
	}
	return targets, nil
}

// populate fills the closed store at root with what TestPopulateBenchStore
// calls what ("listing" or "rss").
func populate(root, what string) error {
	cmd := exec.Command(*populateBin, "-test.run", "^TestPopulateBenchStore$", "-test.count", "1")
	cmd.Env = append(os.Environ(), "NSFS_BENCH_STORE="+root, "NSFS_BENCH_POPULATE="+what)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("fill store %s (%s): %v\n%s", root, what, err, out)
	}
	return nil
}

// committing is barefs with -commits: the commit rows' floor.
var committing *target

// storeDir is the nsfs store's directory: fdatasync is timed there, on
// the filesystem meta.db lives on.
var storeDir string

// fdatasyncTime is the median time of ops writes of 4 KiB, each followed
// by fdatasync, to one file in the store's directory: what each of the
// two syncs of a bbolt commit costs on that disk.
func fdatasyncTime(ops int) (float64, error) {
	f, err := os.CreateTemp(storeDir, "fdatasync-")
	if err != nil {
		return 0, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	page := make([]byte, 4096)
	samples := make([]float64, 0, ops)
	for i := 0; i < ops; i++ {
		page[0] = byte(i)
		start := time.Now()
		if _, err := f.WriteAt(page, int64(i%16)*4096); err != nil {
			return 0, err
		}
		if err := unix.Fdatasync(int(f.Fd())); err != nil {
			return 0, err
		}
		samples = append(samples, float64(time.Since(start).Nanoseconds()))
	}
	return median(samples), nil
}

// target is one filesystem under test.
type target struct {
	name   string
	mnt    string
	daemon *exec.Cmd     // nil for tmpfs
	exited chan struct{} // closed when the daemon exited
	// listed is when each directory was last listed, for cold listings.
	listed map[string]time.Time
}

// path is a path below the target's ns/ directory.
func (t *target) path(p ...string) string {
	return filepath.Join(append([]string{t.mnt, "ns"}, p...)...)
}

func (t *target) isFUSE() bool { return t.daemon != nil }

// start runs a FUSE daemon and waits until its mount answers.
func (t *target) start(args []string, logPath string) error {
	if err := os.MkdirAll(t.mnt, 0o755); err != nil {
		return err
	}
	logFile, err := os.Create(logPath)
	if err != nil {
		return err
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// Its own process group: a Ctrl-C reaches only us, and we unmount.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return err
	}
	t.daemon, t.exited = cmd, make(chan struct{})
	go func() {
		cmd.Wait()
		logFile.Close()
		close(t.exited)
	}()
	cleanups.push(t.stop)
	deadline := time.Now().Add(15 * time.Second)
	for !isMountpoint(t.mnt) {
		select {
		case <-t.exited:
			out, _ := os.ReadFile(logPath)
			return fmt.Errorf("%s exited before it mounted %s:\n%s", t.name, t.mnt, out)
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not mount %s within 15 s (log: %s)", t.name, t.mnt, logPath)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return nil
}

// stop unmounts a daemon's filesystem (SIGTERM: it unmounts and exits;
// else a lazy unmount and SIGKILL) or the tmpfs. It can be called again.
func (t *target) stop() {
	if t.daemon == nil {
		if isMountpoint(t.mnt) {
			if err := unix.Unmount(t.mnt, unix.MNT_DETACH); err != nil {
				log.Printf("umount %s: %v", t.mnt, err)
			}
		}
		return
	}
	select {
	case <-t.exited:
	default:
		t.daemon.Process.Signal(syscall.SIGTERM)
		select {
		case <-t.exited:
		case <-time.After(10 * time.Second):
			log.Printf("%s did not exit within 10 s of SIGTERM: lazy unmount, SIGKILL", t.name)
			unix.Unmount(t.mnt, unix.MNT_DETACH)
			t.daemon.Process.Kill()
			<-t.exited
		}
	}
	if isMountpoint(t.mnt) {
		unix.Unmount(t.mnt, unix.MNT_DETACH)
	}
}

func (t *target) mountTmpfs() error {
	if err := os.MkdirAll(t.mnt, 0o755); err != nil {
		return err
	}
	if err := unix.Mount("tmpfs", t.mnt, "tmpfs", 0, "size=2g"); err != nil {
		return fmt.Errorf("mount -t tmpfs %s: %v", t.mnt, err)
	}
	cleanups.push(t.stop)
	return nil
}

// isMountpoint reports whether dir is a mountpoint (/proc/self/mountinfo).
func isMountpoint(dir string) bool {
	entries, err := mountinfo.Read(mountinfo.Self)
	if err != nil {
		return false
	}
	_, ok := mountinfo.At(entries, dir)
	return ok
}

// listingSize is how many refs the listing workloads list.
const listingSize = 10000

// layOut makes on tmpfs and barefs the tree nsfs was filled with: ns/
// default/images/src and many/img-00000…, ns/other/images, and
// blobs/sha256 for the ingest.
func (t *target) layOut(manifest []byte) error {
	for _, d := range []string{"default/images/many", "default/blobs/sha256", "other/images"} {
		if err := os.MkdirAll(t.path(d), 0o755); err != nil {
			return err
		}
	}
	if err := os.WriteFile(t.path("default/images/src"), manifest, 0o644); err != nil {
		return err
	}
	for i := 0; i < listingSize; i++ {
		if err := os.WriteFile(t.path("default/images/many", fmt.Sprintf("img-%05d", i)), manifest, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// waitCold waits until the kernel's entries and attributes of dir's
// children, cached by the last listing on a FUSE target, have expired
// (timeouts of 1 s).
func (t *target) waitCold(dir string) {
	if !t.isFUSE() {
		return
	}
	if last, ok := t.listed[dir]; ok {
		if wait := 1100*time.Millisecond - time.Since(last); wait > 0 {
			time.Sleep(wait)
		}
	}
}

func (t *target) listedNow(dir string) {
	if t.listed == nil {
		t.listed = map[string]time.Time{}
	}
	t.listed[dir] = time.Now()
}

// A workload is measured on every target for several rounds.
type workload struct {
	name   string
	ops    int // operations per round on each target (the result is per op)
	rounds int // 0: -rounds (the cheap ones take more, to steady their medians)
	// throughput, if set, makes the result MiB/s of this many bytes per op
	// instead of a time per op.
	throughput int64
	target     string
	// met judges the medians (nil: no target).
	met func(nsfs, tmpfs float64) bool
	// fsyncs, when set, makes the target a floor measured in the same
	// rounds: barefs's time plus this many fdatasyncs of the store's disk
	// (what the durable commits need at least), times floorRatio.
	fsyncs int
	// run does ops operations on t (round counts from 0) and returns how
	// long they took; setup outside the timed part is its own business.
	run func(t *target, round int) (time.Duration, error)
}

// row is a line of the table.
type row struct {
	workload *workload
	medians  map[string]float64 // per target: ns per op, or MiB/s
	text     map[string]string  // per target, when not a plain number
	note     string
}

func (w *workload) measure(targets []*target) (row, error) {
	n := w.rounds
	if n == 0 {
		n = *rounds
	}
	samples := map[string][]float64{}
	for round := 0; round < n; round++ {
		for _, t := range targets {
			d, err := w.run(t, round)
			if err != nil {
				return row{}, fmt.Errorf("%s: %v", t.name, err)
			}
			v := float64(d.Nanoseconds()) / float64(w.ops)
			if w.throughput > 0 {
				v = float64(w.throughput) / (1 << 20) / (d.Seconds() / float64(w.ops))
			}
			samples[t.name] = append(samples[t.name], v)
		}
		if w.fsyncs > 0 {
			d, err := w.run(committing, round)
			if err != nil {
				return row{}, fmt.Errorf("%s: %v", committing.name, err)
			}
			samples[committing.name] = append(samples[committing.name], float64(d.Nanoseconds())/float64(w.ops))
			v, err := fdatasyncTime(50)
			if err != nil {
				return row{}, fmt.Errorf("fdatasync in %s: %v", storeDir, err)
			}
			samples["fdatasync"] = append(samples["fdatasync"], v)
		}
	}
	r := row{workload: w, medians: map[string]float64{}}
	for name, s := range samples {
		r.medians[name] = median(s)
	}
	if w.fsyncs > 0 {
		// The floor is barefs making the commits' disk writes in line
		// (barefs+commits), never less than its parts timed apart: an
		// fdatasync right after another costs less than one after a FUSE
		// request, so the parts' sum alone would be below any durable
		// FUSE filesystem.
		parts := r.medians["barefs"] + float64(w.fsyncs)*r.medians["fdatasync"]
		floor := max(parts, r.medians[committing.name])
		r.medians["floor"] = floor
		r.note = fmt.Sprintf("%s: floor = barefs making the %d fdatasyncs in line %s (its parts timed apart: barefs %s + %d × fdatasync %s, 4 KiB on the store's disk, = %s); nsfs/floor %.2f×",
			w.name, w.fsyncs, formatNs(r.medians[committing.name]), formatNs(r.medians["barefs"]), w.fsyncs, formatNs(r.medians["fdatasync"]), formatNs(parts), r.medians["nsfs"]/floor)
	}
	fmt.Fprintf(os.Stderr, "  %-44s nsfs %s  tmpfs %s  barefs %s\n", w.name,
		w.format(r.medians["nsfs"]), w.format(r.medians["tmpfs"]), w.format(r.medians["barefs"]))
	return r, nil
}

// median is the middle sample (the upper one of an even count); the
// samples are left in their order.
func median[T cmp.Ordered](samples []T) T {
	s := slices.Clone(samples)
	slices.Sort(s)
	return s[len(s)/2]
}

func (w *workload) format(v float64) string {
	if w.throughput > 0 {
		return fmt.Sprintf("%.0f MiB/s", v)
	}
	return formatNs(v)
}

func formatNs(ns float64) string {
	switch {
	case ns >= 1e9:
		return fmt.Sprintf("%.2f s", ns/1e9)
	case ns >= 1e6:
		return fmt.Sprintf("%.3g ms", ns/1e6)
	case ns >= 1e3:
		return fmt.Sprintf("%.3g µs", ns/1e3)
	}
	return fmt.Sprintf("%.0f ns", ns)
}

// timed runs fn ops times.
func timed(ops int, fn func(i int) error) (time.Duration, error) {
	start := time.Now()
	for i := 0; i < ops; i++ {
		if err := fn(i); err != nil {
			return 0, err
		}
	}
	return time.Since(start), nil
}

// workloads is the table of what make bench measures, one entry per row:
// long because it is a list, each entry a few lines of its own.
func workloads() []*workload {
	ratio := func(limit float64) func(nsfs, tmpfs float64) bool {
		return func(nsfs, tmpfs float64) bool { return nsfs <= limit*tmpfs }
	}
	return []*workload{
		{
			name: "namespace create+delete (mkdir+rmdir)", ops: 100,
			fsyncs: 4, // two commits of two fdatasyncs each
			run: func(t *target, round int) (time.Duration, error) {
				return timed(100, func(i int) error {
					p := t.path(fmt.Sprintf("b%d-%d", round, i))
					if err := unix.Mkdir(p, 0o755); err != nil {
						return fmt.Errorf("mkdir %s: %v", p, err)
					}
					if err := unix.Rmdir(p); err != nil {
						return fmt.Errorf("rmdir %s: %v", p, err)
					}
					return nil
				})
			},
		},
		{
			name: "label set+get (setxattr+getxattr)", ops: 200,
			fsyncs: 2, // one commit
			run: func(t *target, round int) (time.Duration, error) {
				p := t.path("default")
				buf := make([]byte, 64)
				return timed(200, func(i int) error {
					v := strconv.Itoa(round*1000 + i)
					if err := unix.Setxattr(p, "user.bench", []byte(v), 0); err != nil {
						return fmt.Errorf("setxattr %s: %v", p, err)
					}
					n, err := unix.Getxattr(p, "user.bench", buf)
					if err != nil || string(buf[:n]) != v {
						return fmt.Errorf("getxattr %s: %q, %v; want %q", p, buf[:n], err, v)
					}
					return nil
				})
			},
		},
		{
			name: "stat, cached (lstat of an image)", ops: 20000, rounds: 11,
			target: "≤ 1.5× tmpfs", met: ratio(1.5),
			run: func(t *target, round int) (time.Duration, error) {
				p := t.path("default/images/src")
				var st unix.Stat_t
				if err := unix.Lstat(p, &st); err != nil { // into the cache
					return 0, err
				}
				return timed(20000, func(int) error { return unix.Lstat(p, &st) })
			},
		},
		{
			name: "stat, missing image name (ENOENT)", ops: 2000, rounds: 11,
			target: "≤ 3× tmpfs", met: ratio(3),
			run: func(t *target, round int) (time.Duration, error) {
				p := t.path("default/images/missing")
				var st unix.Stat_t
				return timed(2000, func(int) error {
					if err := unix.Lstat(p, &st); err != unix.ENOENT {
						return fmt.Errorf("lstat %s: %v, want ENOENT", p, err)
					}
					return nil
				})
			},
		},
		{
			name: "stat, missing namespace name (ENOENT)", ops: 2000, rounds: 11,
			target: "≤ 3× tmpfs", met: ratio(3),
			run: func(t *target, round int) (time.Duration, error) {
				p := t.path("missing")
				var st unix.Stat_t
				return timed(2000, func(int) error {
					if err := unix.Lstat(p, &st); err != unix.ENOENT {
						return fmt.Errorf("lstat %s: %v, want ENOENT", p, err)
					}
					return nil
				})
			},
		},
		{
			name: "list 10,000 refs (getdents, names only)", ops: 5, rounds: 11,
			target: "≤ 2.5× tmpfs", met: ratio(2.5),
			run: func(t *target, round int) (time.Duration, error) {
				p := t.path("default/images/many")
				defer t.listedNow(p) // the cold rows wait for what this keeps to expire
				return timed(5, func(int) error {
					names, err := readNames(p)
					if err == nil && len(names) != listingSize {
						err = fmt.Errorf("%d names, want %d", len(names), listingSize)
					}
					return err
				})
			},
		},
		{
			// What the kernel keeps of a listing (the row above) expires
			// with its entries: a listing after that is READDIRPLUS.
			name: "list 10,000 refs (getdents, names only, cold)", ops: 1,
			run: func(t *target, round int) (time.Duration, error) {
				p := t.path("default/images/many")
				t.waitCold(p)
				defer t.listedNow(p)
				return timed(1, func(int) error {
					names, err := readNames(p)
					if err == nil && len(names) != listingSize {
						err = fmt.Errorf("%d names, want %d", len(names), listingSize)
					}
					return err
				})
			},
		},
		{
			name: "list+lstat 10,000 refs (Go loop, cold)", ops: 1,
			target: "≤ 3× tmpfs", met: ratio(3),
			run: func(t *target, round int) (time.Duration, error) {
				p := t.path("default/images/many")
				t.waitCold(p)
				defer t.listedNow(p)
				var st unix.Stat_t
				return timed(1, func(int) error {
					names, err := readNames(p)
					if err == nil && len(names) != listingSize {
						err = fmt.Errorf("%d names, want %d", len(names), listingSize)
					}
					for _, name := range names {
						if err := unix.Lstat(p+"/"+name, &st); err != nil {
							return err
						}
					}
					return err
				})
			},
		},
		{
			name: "`ls -l` of 10,000 refs (the ls process, cold)", ops: 1,
			target: "≤ 1.5× tmpfs", met: ratio(1.5),
			run: func(t *target, round int) (time.Duration, error) {
				p := t.path("default/images/many")
				t.waitCold(p)
				defer t.listedNow(p)
				return timed(1, func(int) error {
					cmd := exec.Command("ls", "-l", p)
					var stderr bytes.Buffer
					cmd.Stdout, cmd.Stderr = io.Discard, &stderr
					if err := cmd.Run(); err != nil {
						return fmt.Errorf("ls -l %s: %v: %s", p, err, stderr.Bytes())
					}
					return nil
				})
			},
		},
		{
			name: "image write (cp of a manifest to another ns)", ops: 50,
			run: func(t *target, round int) (time.Duration, error) {
				src := t.path("default/images/src")
				return timed(50, func(i int) error {
					return copyFile(src, t.path("other/images", fmt.Sprintf("cp-%d-%d", round, i)))
				})
			},
		},
		blobIngest(),
	}
}

// readNames lists dir with getdents64 and a 32 KiB buffer, as ls does.
func readNames(dir string) ([]string, error) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	buf := make([]byte, 32<<10)
	var names []string
	for {
		n, err := unix.Getdents(fd, buf)
		if err != nil {
			return nil, fmt.Errorf("getdents %s: %v", dir, err)
		}
		if n == 0 {
			return names, nil
		}
		_, _, names = unix.ParseDirent(buf[:n], -1, names)
	}
}

// copyFile does what cp does to a new file: read the source, create the
// destination, write, close (where nsfs commits the image).
func copyFile(src, dst string) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// blobSize is the size of the ingested blob.
const blobSize = 256 << 20

// blobIngest writes a 256 MiB blob as `cp layer.tar blobs/sha256/<hex>`
// would (1 MiB writes), then fsync and close: on nsfs the bytes are
// hashed, written, fsynced and published. It is removed after each round,
// untimed.
func blobIngest() *workload {
	var data []byte
	var name string
	return &workload{
		name: "blob ingest, 256 MiB (write+fsync+close)", ops: 1, rounds: 3,
		throughput: blobSize,
		run: func(t *target, round int) (time.Duration, error) {
			if data == nil {
				data = make([]byte, blobSize)
				rng := rand.NewChaCha8([32]byte{42})
				rng.Read(data)
				sum := sha256.Sum256(data)
				name = hex.EncodeToString(sum[:])
			}
			p := t.path("default/blobs/sha256", name)
			d, err := timed(1, func(int) error {
				f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o444)
				if err != nil {
					return err
				}
				for off := 0; off < len(data); off += 1 << 20 {
					if _, err := f.Write(data[off : off+1<<20]); err != nil {
						f.Close()
						return err
					}
				}
				if err := f.Sync(); err != nil {
					f.Close()
					return err
				}
				return f.Close()
			})
			if err != nil {
				return 0, err
			}
			return d, os.Remove(p)
		},
	}
}

// floorRatio is how far above its floor (barefs + the fdatasyncs of its
// commits) a workload that commits may be.
const floorRatio = 1.25

// rssImages is how many images the RSS store holds (100 namespaces).
const rssImages = 100000

// measureRSS mounts a store of 100,000 images in 100 namespaces, lists
// every namespace's images/ and lstats every image through the mount, and
// reads the daemon's VmRSS and VmHWM.
func measureRSS(dir string) (row, error) {
	w := &workload{name: "daemon RSS, 100,000 images in 100 namespaces (listed, lstat'ed, then `ls -lR`)", target: "anon ≤ 48 MiB"}
	store := filepath.Join(dir, "rss-store")
	start := time.Now()
	if err := populate(store, "rss"); err != nil {
		return row{}, err
	}
	filled := time.Since(start)
	t := &target{name: "nsfs-rss", mnt: filepath.Join(dir, "rss")}
	if err := t.start([]string{*nsfsBin, "mount", "--root", store, t.mnt}, filepath.Join(dir, "nsfs-rss.log")); err != nil {
		return row{}, err
	}
	defer t.stop()
	pid := t.daemon.Process.Pid
	atMount, err := memoryOf(pid)
	if err != nil {
		return row{}, err
	}
	start = time.Now()
	namespaces, err := readNames(t.path())
	if err != nil {
		return row{}, err
	}
	count := 0
	var st unix.Stat_t
	for _, ns := range namespaces {
		if ns == "." || ns == ".." {
			continue
		}
		images := t.path(ns, "images")
		names, err := readNames(images)
		if err != nil {
			return row{}, err
		}
		for _, name := range names {
			if name == "." || name == ".." {
				continue
			}
			if err := unix.Lstat(images+"/"+name, &st); err != nil {
				return row{}, fmt.Errorf("lstat %s/%s: %v", images, name, err)
			}
			count++
		}
	}
	walked := time.Since(start)
	if count != rssImages {
		return row{}, fmt.Errorf("listed %d images, want %d", count, rssImages)
	}
	afterWalk, err := memoryOf(pid)
	if err != nil {
		return row{}, err
	}
	// Then as a user would: ls -lR of the whole tree (its output, one
	// line per image, is thrown away).
	start = time.Now()
	ls := exec.Command("ls", "-lR", t.path())
	var stderr bytes.Buffer
	ls.Stdout, ls.Stderr = io.Discard, &stderr
	if err := ls.Run(); err != nil {
		return row{}, fmt.Errorf("ls -lR %s: %v: %s", t.path(), err, stderr.Bytes())
	}
	lsTook := time.Since(start)
	m, err := memoryOf(pid)
	if err != nil {
		return row{}, err
	}
	var dbSize int64
	if fi, err := os.Stat(filepath.Join(store, "meta.db")); err == nil {
		dbSize = fi.Size()
	}
	mib := func(b int64) float64 { return float64(b) / (1 << 20) }
	r := row{
		workload: w,
		medians:  map[string]float64{"nsfs": float64(m.anon)},
		text: map[string]string{
			"nsfs": fmt.Sprintf("%.0f MiB (anon %.0f + file %.0f)", mib(m.rss), mib(m.anon), mib(m.fileMap)),
		},
		note: fmt.Sprintf("daemon RSS: after listing and lstat-ing all %d images through the mount (%.1f s): VmRSS %.1f MiB = RssAnon %.1f MiB + RssFile %.1f MiB; "+
			"after ls -lR of the mount (%.1f s): VmHWM (peak) %.1f MiB, VmRSS %.1f MiB = RssAnon %.1f MiB + RssFile %.1f MiB (bbolt's mmap of meta.db, the binary: page cache); "+
			"%.1f MiB at mount. meta.db: %.1f MiB, %.0f bytes per image. The store was filled through package metadata (%.1f s), before mounting.",
			count, walked.Seconds(), mib(afterWalk.rss), mib(afterWalk.anon), mib(afterWalk.fileMap),
			lsTook.Seconds(), mib(m.hwm), mib(m.rss), mib(m.anon), mib(m.fileMap),
			mib(atMount.rss), mib(dbSize), float64(dbSize)/rssImages, filled.Seconds()),
	}
	w.met = func(anon, _ float64) bool { return anon <= 48<<20 }
	fmt.Fprintf(os.Stderr, "  %-44s %s\n", w.name, r.note)
	return r, nil
}

// memory is what /proc/PID/status says of a process, in bytes.
type memory struct {
	rss, hwm      int64 // VmRSS, VmHWM (peak)
	anon, fileMap int64 // RssAnon (its heap), RssFile (mapped files: bbolt's mmap, the binary)
}

// memoryOf reads the memory of process pid.
func memoryOf(pid int) (m memory, err error) {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return m, err
	}
	for _, line := range strings.Split(string(status), "\n") {
		fields := strings.Fields(line)
		if len(fields) != 3 || fields[2] != "kB" {
			continue
		}
		kb, _ := strconv.ParseInt(fields[1], 10, 64)
		switch fields[0] {
		case "VmRSS:":
			m.rss = kb << 10
		case "VmHWM:":
			m.hwm = kb << 10
		case "RssAnon:":
			m.anon = kb << 10
		case "RssFile:":
			m.fileMap = kb << 10
		}
	}
	if m.rss == 0 || m.hwm == 0 {
		return m, fmt.Errorf("no VmRSS/VmHWM in /proc/%d/status", pid)
	}
	return m, nil
}

// printTable prints the one table, and the machine it ran on.
func printTable(out io.Writer, rows []row, pulls pullRows, took time.Duration) {
	fmt.Fprintf(out, "\nnsfs benchmark: %s; median of %d rounds (stat and list: 11, blob ingest: 3); per operation unless stated\n", machine(), *rounds)
	fmt.Fprintln(out)
	fmt.Fprintln(out, "| workload | nsfs | tmpfs | barefs | nsfs/tmpfs | nsfs/barefs | target | met |")
	fmt.Fprintln(out, "|---|---|---|---|---|---|---|---|")
	var notes []string
	for _, r := range rows {
		w := r.workload
		cell := func(name string) string {
			if s, ok := r.text[name]; ok {
				return s
			}
			v, ok := r.medians[name]
			if !ok {
				return "—"
			}
			return w.format(v)
		}
		ratio := func(name string) string {
			a, ok1 := r.medians["nsfs"]
			b, ok2 := r.medians[name]
			if !ok1 || !ok2 || b == 0 {
				return "—"
			}
			if w.throughput > 0 { // higher is better
				return fmt.Sprintf("%.2f× the speed", a/b)
			}
			return fmt.Sprintf("%.3g×", a/b)
		}
		target, met := "—", "—"
		if w.target != "" {
			target = w.target
		}
		if w.met != nil {
			met = "no"
			if w.met(r.medians["nsfs"], r.medians["tmpfs"]) {
				met = "yes"
			}
		}
		if floor, ok := r.medians["floor"]; ok {
			target = fmt.Sprintf("≤ %.2f× (barefs with %d fdatasyncs) = %s", floorRatio, w.fsyncs, formatNs(floorRatio*floor))
			met = "no"
			if r.medians["nsfs"] <= floorRatio*floor {
				met = "yes"
			}
		}
		fmt.Fprintf(out, "| %s | %s | %s | %s | %s | %s | %s | %s |\n", w.name, cell("nsfs"), cell("tmpfs"), cell("barefs"),
			ratio("tmpfs"), ratio("barefs"), target, met)
		if r.note != "" {
			notes = append(notes, r.note)
		}
	}
	fmt.Fprintln(out)
	pulls.print(out)
	fmt.Fprintln(out)
	for _, n := range notes {
		fmt.Fprintln(out, n)
	}
	fmt.Fprintf(out, "whole run: %.0f s\n", took.Seconds())
}

// machine describes where the run happened.
func machine() string {
	cpu := "unknown CPU"
	if info, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(info), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				cpu = strings.TrimSpace(v)
				break
			}
		}
	}
	var uts unix.Utsname
	kernel := "?"
	if unix.Uname(&uts) == nil {
		kernel = unix.ByteSliceToString(uts.Release[:])
	}
	return fmt.Sprintf("%d CPUs (%s), Linux %s, %s, %s", runtime.NumCPU(), cpu, kernel, runtime.Version(), time.Now().UTC().Format("2006-01-02 15:04 UTC"))
}

// pullRows are the pull measurements (bench/pull.go), or why there are
// none.
type pullRows struct {
	result *pullResult
	status string
}

func (p pullRows) print(out io.Writer) {
	r := p.result
	if r == nil {
		fmt.Fprintf(out, "pull rows: %s\n", p.status)
		return
	}
	mib := float64(r.imageBytes) / (1 << 20)
	speed := func(d time.Duration) string { return fmt.Sprintf("%.0f MiB/s", mib/d.Seconds()) }
	yes := func(ok bool) string {
		if ok {
			return "yes"
		}
		return "no"
	}
	ratio := r.oras.Seconds() / r.cold.Seconds() // nsfs's speed as a fraction of oras-go's
	fmt.Fprintf(out, "| pull of a %.0f MiB image from a local registry (median of %d cold, %d second) | nsfs (whole `nsfs pull` process) | oras-go into a plain OCI directory | nsfs speed / oras-go speed | target | met |\n",
		mib, pullRounds, pullRounds*secondPulls)
	fmt.Fprintln(out, "|---|---|---|---|---|---|")
	fmt.Fprintf(out, "| cold pull | %s (%s) | %s (%s) | %.2f× | ≥ 0.9× oras-go | %s |\n",
		formatNs(float64(r.cold)), speed(r.cold), formatNs(float64(r.oras)), speed(r.oras), ratio, yes(ratio >= 0.9))
	fmt.Fprintf(out, "| second-namespace pull | %s, %d blob bytes from the registry | — | — | ≤ 15 ms median, 0 blob bytes | %s |\n",
		formatNs(float64(r.second)), r.secondBytes, yes(r.second <= 15*time.Millisecond && r.secondBytes == 0))
	fmt.Fprintf(out, "\nCPU time of a cold pull (medians): %s; of oras-go's copy: %s.\n", r.coldCPU, r.orasCPU)
}
