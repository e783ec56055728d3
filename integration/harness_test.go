// Package integration mounts nsfs for real and drives the mount with the
// tools a user would use (mkdir, setfattr, cp, rm, ...), checking exit
// status, the tool's error message and its output.
//
// Every test runs the daemon as a separate process built from cmd/nsfs (a
// process that both serves and uses a FUSE mount can deadlock), waits for
// readiness by polling, and unmounts in t.Cleanup, even on failure. Every
// child process is made and started by children_test.go's functions
// (command, childCommand, spawn), which bound it and let none outlive
// the suite, even one that go test's -timeout ends.
package integration

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/nsfs/nsfs/mountinfo"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

var (
	// nsfsBin is the daemon binary built once by TestMain.
	nsfsBin string
	// skipReason is why this machine cannot mount (empty when it can).
	skipReason string
)

const (
	readyTimeout = 15 * time.Second // mount until `stat MNT/ns` answers
	exitTimeout  = 10 * time.Second // unmount until the process is gone
	toolTimeout  = 90 * time.Second // any one tool run
	buildTimeout = 5 * time.Minute  // go build ./cmd/nsfs
	// backgroundTimeout bounds a command a test starts in the background
	// (startBackground) and ends itself.
	backgroundTimeout = toolTimeout
	// registryTimeout bounds a docker-registry's life: as long as the
	// longest watchdog of a daemon.
	registryTimeout = 5 * time.Minute
	// watchdogTimeout bounds a whole test's use of one daemon: a request
	// the daemon never answers would otherwise hang the test process in
	// the kernel until go test's timeout, which runs no cleanup.
	watchdogTimeout = 150 * time.Second
)

// binEnv names an nsfs binary to use instead of building one (the
// sub-runs of TestTimedOutRunLeavesNoOrphan).
const binEnv = "NSFS_INTEGRATION_BIN"

func TestMain(m *testing.M) {
	if os.Getenv(reaperEnv) != "" {
		os.Exit(runReaper(os.Stdin))
	}
	closeInheritedOnExec()
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	skipReason = mountPrerequisites()
	if skipReason != "" {
		if os.Getenv("CI") != "" {
			// CI runs as root with /dev/fuse: a skip there would hide everything.
			fmt.Fprintf(os.Stderr, "integration: cannot run in CI: %s\n", skipReason)
			return 1
		}
		fmt.Fprintf(os.Stderr, "integration: skipping every test: %s\n", skipReason)
		return m.Run()
	}
	if err := suiteReaper.start(); err != nil {
		fmt.Fprintf(os.Stderr, "integration: start the reaper: %v\n", err)
		return 1
	}
	code := runSuite(m)
	if err := suiteReaper.finish(); err != nil {
		fmt.Fprintf(os.Stderr, "integration: %v\n", err)
		code = 1
	}
	if fds := inheritableDescriptors(); len(fds) > 0 {
		fmt.Fprintf(os.Stderr, "integration: descriptors without close-on-exec after the suite: %s\n", strings.Join(fds, ", "))
		code = 1
	}
	return code
}

// runSuite builds the daemon (unless binEnv names one) and runs the tests.
func runSuite(m *testing.M) int {
	if bin := os.Getenv(binEnv); bin != "" {
		nsfsBin = bin
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "nsfs-integration-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	// Other users run it too (the default-root test).
	if err := os.Chmod(dir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	nsfsBin = filepath.Join(dir, "nsfs")
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	// The tags of `make build` (the Makefile's NSFS_TAGS), so that the
	// binary tested is the one users run.
	build := command(ctx, "go", "build", "-tags", "urfave_cli_no_docs,netgo,osusergo", "-o", nsfsBin, "./cmd/nsfs")
	build.Dir = ".." // the module root: go test runs in the package directory
	if out, err := combinedOutput(nil, build); err != nil {
		fmt.Fprintf(os.Stderr, "integration: go build ./cmd/nsfs: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

// mountPrerequisites says why FUSE mounts cannot be made here, or "".
func mountPrerequisites() string {
	if os.Geteuid() != 0 {
		return "these tests mount FUSE filesystems and must run as root"
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		return fmt.Sprintf("/dev/fuse is missing (%v)", err)
	}
	for _, tool := range []string{"umount", "setfattr", "getfattr", "sha256sum", "find"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Sprintf("%s is not installed (apt-get install fuse3 attr)", tool)
		}
	}
	return ""
}

// syncBuffer collects a daemon's output while the test reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// daemon is one `nsfs mount` process serving root at mnt.
type daemon struct {
	root, mnt string
	flags     []string // extra mount flags, e.g. --content-sharing isolated
	cmd       *exec.Cmd
	logs      *syncBuffer // the daemon's stderr
	stdout    *syncBuffer

	exited  chan struct{} // closed when the process is gone
	waitErr error         // valid once exited is closed
	// finished: stopped, signalled or killed by the test; cleanup then only
	// removes a mount left behind.
	finished bool
	killed   bool

	watchdog *time.Timer
	hung     atomic.Bool // the watchdog killed the daemon
	limit    time.Duration
	conn     atomic.Value // string: /sys/fs/fuse/connections/<minor> of our mount
}

type daemonConfig struct {
	root, mnt string
	flags     []string
	watchdog  time.Duration
	// predecessor: the daemon that served mnt before (restart, remount),
	// whose state a failure to mount explains.
	predecessor *daemon
}

// withWatchdog gives a long test more time than watchdogTimeout.
func withWatchdog(limit time.Duration) daemonOption {
	return func(c *daemonConfig) { c.watchdog = limit }
}

type daemonOption func(*daemonConfig)

// withStore serves an existing root at an existing mountpoint (remounts).
func withStore(root, mnt string) daemonOption {
	return func(c *daemonConfig) { c.root, c.mnt = root, mnt }
}

// withFlags adds mount flags.
func withFlags(flags ...string) daemonOption {
	return func(c *daemonConfig) { c.flags = append(c.flags, flags...) }
}

// isolated mounts with --content-sharing isolated.
func isolated() daemonOption { return withFlags("--content-sharing", "isolated") }

func requireMount(t *testing.T) {
	t.Helper()
	if skipReason != "" {
		t.Skip(skipReason)
	}
}

// startNsfs runs `nsfs mount --root ROOT MNT` and returns once the mount
// answers. Cleanup unmounts it and checks that the daemon exited 0.
func startNsfs(t *testing.T, opts ...daemonOption) *daemon {
	t.Helper()
	requireMount(t)
	cfg := daemonConfig{watchdog: watchdogTimeout}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.root == "" {
		base := t.TempDir()
		cfg.root = filepath.Join(base, "root")
		cfg.mnt = filepath.Join(base, "mnt")
		if err := os.Mkdir(cfg.mnt, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	d := &daemon{
		root:   cfg.root,
		mnt:    cfg.mnt,
		flags:  cfg.flags,
		logs:   &syncBuffer{},
		stdout: &syncBuffer{},
		exited: make(chan struct{}),
		limit:  cfg.watchdog,
	}
	args := append([]string{"mount", "--root", d.root}, d.flags...)
	args = append(args, d.mnt)
	// If the test binary dies (a timeout panic runs no cleanup), the
	// daemon gets SIGKILL and the reaper unmounts its mount lazily.
	d.cmd = childCommand(nsfsBin, args...)
	d.cmd.Stdout = d.stdout
	d.cmd.Stderr = d.logs
	suiteReaper.mount(d.mnt)
	proc, err := spawn(t, d.cmd) // the watchdog is its deadline
	if err != nil {
		t.Fatalf("start nsfs: %v", err)
	}
	go func() {
		<-proc.exited
		d.waitErr = proc.waitErr
		close(d.exited)
	}()
	// SIGKILL makes every request the daemon never answered fail with
	// ENOTCONN, so a hung test fails here instead of at go test's timeout.
	d.watchdog = time.AfterFunc(d.limit, func() {
		d.hung.Store(true)
		// A daemon stuck in the kernel (say, notifying from inside a
		// request) ignores SIGKILL until its connection is aborted.
		if conn, ok := d.conn.Load().(string); ok {
			_ = os.WriteFile(filepath.Join(conn, "abort"), []byte("1"), 0)
		}
		_ = killGroup(d.cmd)
	})
	t.Cleanup(func() { d.cleanup(t) })

	deadline := time.Now().Add(readyTimeout)
	for {
		select {
		case <-d.exited:
			d.finished = true
			t.Fatalf("nsfs %s exited before the mount was ready: %v\nstderr:\n%s", strings.Join(args, " "), d.waitErr, d.logs)
		default:
		}
		// statfs always asks a daemon, where stat may be answered from the
		// kernel's cache of a dead mount this daemon has yet to recover.
		var st unix.Statfs_t
		if n := countMounts(t, d.mnt); n > 0 && unix.Statfs(d.mnt, &st) == nil {
			if _, err := os.Stat(filepath.Join(d.mnt, "ns")); err == nil {
				if n != 1 {
					t.Fatalf("%d fuse.nsfs mounts stacked at %s, want 1 (a stale mount must be recovered, not covered)\n%s",
						n, d.mnt, stackedMountsReport(d.mnt, d, cfg.predecessor))
				}
				d.rememberConnection(t)
				return d
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("nsfs mount at %s not ready after %v\nstderr:\n%s", d.mnt, readyTimeout, d.logs)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// stackedMountsReport explains what is mounted at mnt: each mount's line
// in mountinfo (its id, its parent's id, its device), whether its FUSE
// connection still exists and how many requests wait on it, and whether
// the daemons that served mnt are alive.
func stackedMountsReport(mnt string, daemons ...*daemon) string {
	var b strings.Builder
	data, err := os.ReadFile(mountinfo.Self)
	if err != nil {
		fmt.Fprintf(&b, "read %s: %v\n", mountinfo.Self, err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		fields := strings.Fields(line)
		if len(fields) < 5 || fields[4] != mnt {
			continue
		}
		fmt.Fprintf(&b, "mountinfo: %s\n", line)
		if _, minor, ok := strings.Cut(fields[2], ":"); ok {
			conn := filepath.Join("/sys/fs/fuse/connections", minor)
			if waiting, err := os.ReadFile(filepath.Join(conn, "waiting")); err == nil {
				fmt.Fprintf(&b, "  connection %s: %s requests waiting\n", conn, strings.TrimSpace(string(waiting)))
			} else if all, _ := os.ReadDir(filepath.Dir(conn)); len(all) == 0 {
				fmt.Fprintf(&b, "  connection %s: unknown (fusectl is not mounted at %s)\n", conn, filepath.Dir(conn))
			} else {
				fmt.Fprintf(&b, "  connection %s: %v\n", conn, err)
			}
		}
	}
	for _, d := range daemons {
		if d == nil || d.cmd == nil || d.cmd.Process == nil {
			continue
		}
		conn, _ := d.conn.Load().(string)
		fmt.Fprintf(&b, "daemon pid %d (its connection %q): %s\n", d.pid(), conn, processState(d.pid()))
	}
	return b.String()
}

// processState is the State line of /proc/PID/status, or why there is none.
func processState(pid int) string {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return fmt.Sprintf("gone (%v)", err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if state, ok := strings.CutPrefix(line, "State:"); ok {
			return strings.TrimSpace(state)
		}
	}
	return "no State in its status"
}

// rememberConnection finds the fusectl directory of our mount, which can
// abort it when the daemon hangs.
func (d *daemon) rememberConnection(t *testing.T) {
	t.Helper()
	for _, m := range mountTable(t) {
		if m.Mountpoint == d.mnt && m.FSType == "fuse.nsfs" {
			if _, minor, ok := strings.Cut(m.Device, ":"); ok {
				d.conn.Store(filepath.Join("/sys/fs/fuse/connections", minor))
			}
		}
	}
}

// countMounts counts fuse.nsfs mounts at mnt in /proc/self/mountinfo.
func countMounts(t *testing.T, mnt string) int {
	t.Helper()
	n := 0
	for _, m := range mountTable(t) {
		if m.Mountpoint == mnt && m.FSType == "fuse.nsfs" {
			n++
		}
	}
	return n
}

// mountedAt counts mounts of any type at mnt.
func mountedAt(t *testing.T, mnt string) int {
	t.Helper()
	n := 0
	for _, m := range mountTable(t) {
		if m.Mountpoint == mnt {
			n++
		}
	}
	return n
}

// mountTable is the mount table of the test process's mount namespace.
func mountTable(t *testing.T) []mountinfo.Entry {
	t.Helper()
	entries, err := mountinfo.Read(mountinfo.Self)
	if err != nil {
		t.Fatal(err)
	}
	return entries
}

// pid is the daemon's process id.
func (d *daemon) pid() int { return d.cmd.Process.Pid }

// path joins rel to the mountpoint.
func (d *daemon) path(rel ...string) string {
	return filepath.Join(append([]string{d.mnt}, rel...)...)
}

// waitExit waits for the process to end; past timeout it sends SIGQUIT
// (Go's runtime prints every goroutine's stack and exits), so that the
// failure shows where the daemon lingered, then SIGTERM and SIGKILL (to
// our PID only). It returns the exit code, -1 for a signal.
func (d *daemon) waitExit(t *testing.T, timeout time.Duration) (code int, forced bool) {
	t.Helper()
	select {
	case <-d.exited:
	case <-time.After(timeout):
		forced = true
		kernelStacks := threadKernelStacks(d.pid())
		logged := len(d.logs.String())
		_ = d.cmd.Process.Signal(syscall.SIGQUIT)
		select {
		case <-d.exited:
		case <-time.After(quitTimeout):
		}
		goStacks := d.logs.String()[logged:]
		t.Errorf("nsfs (pid %d) still running %v after unmount; sent SIGQUIT\n%s\nits goroutines:\n%s\nits threads in the kernel:\n%s",
			d.pid(), timeout, otherNamespacesMounting(d.mnt), goStacks, kernelStacks)
		select {
		case <-d.exited:
		default:
			t.Errorf("nsfs (pid %d) outlived SIGQUIT; sending SIGTERM", d.pid())
			_ = d.cmd.Process.Signal(syscall.SIGTERM)
		}
		select {
		case <-d.exited:
		case <-time.After(exitTimeout):
			t.Errorf("nsfs (pid %d) ignored SIGTERM; sending SIGKILL", d.pid())
			_ = d.cmd.Process.Kill()
			<-d.exited
		}
	}
	return d.cmd.ProcessState.ExitCode(), forced
}

// otherNamespacesMounting names the mount namespaces (by a process in
// each) that still have a mount at mnt: a copy made by unshare -m keeps
// the filesystem, and so its daemon, alive after the original is gone.
func otherNamespacesMounting(mnt string) string {
	var b strings.Builder
	seen := map[string]bool{}
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, proc := range procs {
		ns, err := os.Readlink(filepath.Join(proc, "ns", "mnt"))
		if err != nil || seen[ns] {
			continue
		}
		seen[ns] = true
		entries, err := mountinfo.Read(filepath.Join(proc, "mountinfo"))
		if err != nil {
			continue
		}
		if e, ok := mountinfo.At(entries, mnt); ok {
			cmdline, _ := os.ReadFile(filepath.Join(proc, "cmdline"))
			fmt.Fprintf(&b, "mount namespace %s (pid %s: %s) still has %s mounted at %s\n",
				ns, filepath.Base(proc), strings.ReplaceAll(string(bytes.TrimRight(cmdline, "\x00")), "\x00", " "), e.FSType, mnt)
		}
	}
	if b.Len() == 0 {
		return "no mount namespace has a mount at " + mnt
	}
	return b.String()
}

// dropCopiedNsfsMounts begins a script run in a new mount namespace
// (unshare -m): the namespace starts with a copy of every mount, other
// tests' nsfs mounts among them, and a copy keeps its filesystem, and so
// its daemon, alive after the test that made it unmounted the original:
// that daemon would not exit until this namespace ends. $KEEP (space
// separated, may be unset) names the mounts the script uses.
const dropCopiedNsfsMounts = `for m in $(findmnt -rn -t fuse.nsfs -o TARGET); do
	case " $KEEP " in *" $m "*) ;; *) umount -l "$m" 2>/dev/null || true ;; esac
done
`

// quitTimeout is how long a daemon has to print its goroutines after
// SIGQUIT.
const quitTimeout = 5 * time.Second

// threadKernelStacks is the kernel stack of each of pid's threads
// (/proc/PID/task/TID/stack), for those that wait in the kernel.
func threadKernelStacks(pid int) string {
	var b strings.Builder
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*", pid))
	for _, task := range tasks {
		stack, _ := os.ReadFile(filepath.Join(task, "stack"))
		if len(bytes.TrimSpace(stack)) > 0 {
			fmt.Fprintf(&b, "thread %s:\n%s", filepath.Base(task), stack)
		}
	}
	return b.String()
}

// stop unmounts with `umount MNT` (retrying while busy), waits for the
// daemon to exit, and checks that it exited 0 and left no mount.
func (d *daemon) stop(t *testing.T) {
	t.Helper()
	if d.finished || d.checkWatchdog(t) {
		return
	}
	d.finished = true
	unmounted := false
	var lastOut string
	deadline := time.Now().Add(exitTimeout)
	for time.Now().Before(deadline) {
		if countMounts(t, d.mnt) == 0 {
			t.Errorf("nsfs at %s went away before the test unmounted it", d.mnt)
			break
		}
		out, err := runWithin(t, toolTimeout, "umount", d.mnt)
		if err == nil {
			unmounted = true
			break
		}
		lastOut = string(out)
		time.Sleep(50 * time.Millisecond) // busy: retry until the deadline
	}
	if !unmounted && lastOut != "" {
		t.Errorf("umount %s kept failing for %v: %s", d.mnt, exitTimeout, lastOut)
	}
	code, forced := d.waitExit(t, exitTimeout)
	if unmounted && !forced && code != 0 {
		t.Errorf("nsfs exited %d after `umount %s`, want 0\nstderr:\n%s", code, d.mnt, d.logs)
	}
	d.removeLeftoverMounts(t, true)
}

// kill9 kills the daemon with SIGKILL and waits for it; the mount stays
// behind, dead ("Transport endpoint is not connected").
func (d *daemon) kill9(t *testing.T) {
	t.Helper()
	if d.checkWatchdog(t) {
		t.FailNow()
	}
	if err := d.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("kill -9 %d: %v", d.pid(), err)
	}
	select {
	case <-d.exited:
	case <-time.After(exitTimeout):
		t.Fatalf("nsfs (pid %d) survived SIGKILL for %v", d.pid(), exitTimeout)
	}
	d.finished, d.killed = true, true
}

// signal sends sig and waits for the daemon to exit; it returns the exit
// code and checks that nothing is left mounted.
func (d *daemon) signal(t *testing.T, sig syscall.Signal) int {
	t.Helper()
	if d.checkWatchdog(t) {
		t.FailNow()
	}
	if err := d.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal %v to %d: %v", sig, d.pid(), err)
	}
	d.finished = true
	code, _ := d.waitExit(t, exitTimeout)
	if n := mountedAt(t, d.mnt); n != 0 {
		t.Errorf("after %v and exit, %d mount(s) left at %s", sig, n, d.mnt)
	}
	d.removeLeftoverMounts(t, false)
	return code
}

// remount stops the daemon normally and mounts the same root again.
func (d *daemon) remount(t *testing.T) *daemon {
	t.Helper()
	d.stop(t)
	return startNsfs(t, withStore(d.root, d.mnt), withFlags(d.flags...), after(d))
}

// after names the daemon that served the mountpoint before.
func after(previous *daemon) daemonOption {
	return func(c *daemonConfig) { c.predecessor = previous }
}

// restart mounts the same root at the same place after kill9.
func (d *daemon) restart(t *testing.T) *daemon {
	t.Helper()
	return startNsfs(t, withStore(d.root, d.mnt), withFlags(d.flags...), after(d))
}

// removeLeftoverMounts lazily unmounts whatever is still mounted at mnt;
// complain says whether a leftover is a defect (it is not after kill -9).
func (d *daemon) removeLeftoverMounts(t *testing.T, complain bool) {
	t.Helper()
	for i := 0; i < 10 && mountedAt(t, d.mnt) > 0; i++ {
		if complain {
			t.Errorf("a mount is left at %s after the daemon exited; umount -l", d.mnt)
		}
		if out, err := runWithin(t, toolTimeout, "umount", "-l", d.mnt); err != nil {
			t.Errorf("umount -l %s: %v: %s", d.mnt, err, out)
		}
	}
}

// checkWatchdog stops the watchdog; if it fired, it reports the hang,
// treats the daemon as killed, and returns true.
func (d *daemon) checkWatchdog(t *testing.T) bool {
	t.Helper()
	d.watchdog.Stop()
	if !d.hung.Load() || d.finished {
		return false
	}
	<-d.exited
	d.finished, d.killed = true, true
	t.Errorf("nsfs at %s was still in use %v after it started: killed it, so that requests it never answered fail (a hang)", d.mnt, d.limit)
	return true
}

func (d *daemon) cleanup(t *testing.T) {
	d.checkWatchdog(t)
	if !d.finished {
		d.stop(t)
	} else if d.killed {
		// A later daemon on the same mountpoint has already been cleaned
		// up (cleanups run last-in first-out); what is left is the dead mount.
		if mountedAt(t, d.mnt) > 0 && !d.recoveredBySuccessor(t) {
			d.removeLeftoverMounts(t, false)
		}
	}
	if t.Failed() {
		t.Logf("nsfs --root %s %s stderr:\n%s", d.root, d.mnt, d.logs)
	}
}

// recoveredBySuccessor: a live mount at mnt belongs to another daemon.
// statfs always asks the daemon (stat may answer from the kernel's cache
// for a second after the daemon died).
func (d *daemon) recoveredBySuccessor(t *testing.T) bool {
	var st unix.Statfs_t
	return unix.Statfs(d.mnt, &st) == nil
}

// waitForLog polls the daemon's stderr for substr.
func (d *daemon) waitForLog(t *testing.T, substr string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(d.logs.String(), substr) {
		if time.Now().After(deadline) {
			t.Errorf("daemon stderr does not contain %q; it is:\n%s", substr, d.logs)
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// vmHWM is the daemon's peak resident set size in bytes.
func (d *daemon) vmHWM(t *testing.T) int64 {
	t.Helper()
	return procStatusKiB(t, d.pid(), "VmHWM:") << 10
}

func procStatusKiB(t *testing.T, pid int, field string) int64 {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == field {
			v, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return v
		}
	}
	t.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}

// wchar is the number of bytes the daemon has passed to write(2) and
// friends so far (/proc/PID/io).
func (d *daemon) wchar(t *testing.T) int64 {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", d.pid()))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "wchar: "); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatalf("no wchar in /proc/%d/io", d.pid())
	return 0
}

// result is what a tool did.
type result struct {
	cmdline        string
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return fmt.Sprintf("`%s` exited %d\nstdout: %q\nstderr: %q", r.cmdline, r.code, r.stdout, r.stderr)
}

// run runs a real tool in dir and returns what it printed and its status.
func run(t *testing.T, dir, name string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), toolTimeout)
	defer cancel()
	cmd := command(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := runChild(t, cmd)
	r := result{
		cmdline: strings.TrimSpace(name + " " + shortArgs(args)),
		stdout:  stdout.String(),
		stderr:  stderr.String(),
		code:    cmd.ProcessState.ExitCode(),
	}
	// Errorf, not Fatalf: run is also called from goroutines.
	if ctx.Err() != nil {
		t.Errorf("%s: still running after %v; killed", r.cmdline, toolTimeout)
		r.code, r.stderr = -1, r.stderr+"(killed: no answer)"
	}
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		t.Errorf("%s: %v", r.cmdline, err)
		r.code, r.stderr = -1, r.stderr+err.Error()
	}
	return r
}

// startBackground starts cmd (made by command or childCommand) and
// returns a channel closed once it has exited (cmd.ProcessState is set
// then). Its group is killed after backgroundTimeout; a command still
// running when the test ends is killed (with its group) and waited for at
// cleanup; cleanups the caller registers later run before that.
func startBackground(t *testing.T, cmd *exec.Cmd) <-chan struct{} {
	t.Helper()
	c, err := spawnWithin(t, cmd, backgroundTimeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		select {
		case <-c.exited:
		default:
			_ = killGroup(cmd)
			<-c.exited
		}
	})
	return c.exited
}

// shortArgs keeps failure messages readable when an argument is 4 KiB.
func shortArgs(args []string) string {
	parts := make([]string, len(args))
	for i, a := range args {
		if len(a) > 80 {
			a = fmt.Sprintf("%s...(%d bytes)", a[:40], len(a))
		}
		parts[i] = a
	}
	return strings.Join(parts, " ")
}

// mustRun runs a tool that must succeed without printing an error line; it
// returns stdout.
func mustRun(t *testing.T, dir, name string, args ...string) string {
	t.Helper()
	r := run(t, dir, name, args...)
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("want success without error output, got %s", r)
	}
	return r.stdout
}

// mustFail runs a tool that must fail with wantStderr in its message.
func mustFail(t *testing.T, dir, wantStderr, name string, args ...string) result {
	t.Helper()
	r := run(t, dir, name, args...)
	if r.code == 0 {
		t.Errorf("want failure with %q, got %s", wantStderr, r)
	} else if !strings.Contains(r.stderr, wantStderr) {
		t.Errorf("want stderr containing %q, got %s", wantStderr, r)
	}
	return r
}

// sh runs a shell script in dir.
func sh(t *testing.T, dir, script string) result {
	t.Helper()
	return run(t, dir, "sh", "-c", script)
}

// mustSh runs a shell script that must succeed silently on stderr.
func mustSh(t *testing.T, dir, script string) string {
	t.Helper()
	return mustRun(t, dir, "sh", "-c", script)
}

// lines is the expected output of a tool printing one name per line.
func lines(names ...string) string {
	if len(names) == 0 {
		return ""
	}
	return strings.Join(names, "\n") + "\n"
}

// assertOutput compares a tool's output with what a user expects.
func assertOutput(t *testing.T, what, got, want string) {
	t.Helper()
	if got != want {
		t.Errorf("%s:\n got: %q\nwant: %q", what, got, want)
	}
}

// assertErrno checks that err carries exactly the errno want.
func assertErrno(t *testing.T, what string, err error, want syscall.Errno) {
	t.Helper()
	if err == nil {
		t.Errorf("%s: succeeded, want %v (%s)", what, want, unix.ErrnoName(want))
		return
	}
	var got syscall.Errno
	if !errors.As(err, &got) {
		t.Errorf("%s: %v carries no errno, want %v (%s)", what, err, want, unix.ErrnoName(want))
		return
	}
	if got != want {
		t.Errorf("%s: errno %s (%v), want %s (%v)", what, unix.ErrnoName(got), got, unix.ErrnoName(want), want)
	}
}

// writeTemp writes data to a file outside the mount and returns its path,
// the source for `cp`.
func writeTemp(t *testing.T, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func blobPath(ns, hexDigest string) string {
	return filepath.Join("ns", ns, "blobs", "sha256", hexDigest)
}

func imagePath(ns, ref string) string { return filepath.Join("ns", ns, "images", ref) }

// putBlob writes a blob into ns with `cp`, as a user would.
func (d *daemon) putBlob(t *testing.T, ns string, b blob) {
	t.Helper()
	src := writeTemp(t, "blob-"+b.hex(), b.data)
	mustRun(t, d.mnt, "cp", src, blobPath(ns, b.hex()))
}

// putManifest writes manifest bytes as image ref of ns (mkdir -p, cp).
func (d *daemon) putManifest(t *testing.T, ns, ref string, manifest []byte) {
	t.Helper()
	if dir := filepath.Dir(ref); dir != "." {
		mustRun(t, d.mnt, "mkdir", "-p", filepath.Join("ns", ns, "images", dir))
	}
	src := writeTemp(t, "manifest.json", manifest)
	mustRun(t, d.mnt, "cp", src, imagePath(ns, ref))
}

// putImage writes the config and layers of img that ns cannot see yet
// (as a puller does: stat first, send only what is missing), then its
// manifest as ref.
func (d *daemon) putImage(t *testing.T, ns, ref string, img testImage) {
	t.Helper()
	for _, b := range append([]blob{img.config}, img.layers...) {
		if _, err := os.Stat(d.path(blobPath(ns, b.hex()))); err == nil {
			continue
		}
		d.putBlob(t, ns, b)
	}
	d.putManifest(t, ns, ref, img.manifest.data)
}

// fileID identifies one version of a file on disk.
type fileID struct {
	ino   uint64
	mtime int64
	size  int64
}

// rootBlobFiles lists ROOT/blobs/sha256 by name.
func rootBlobFiles(t *testing.T, root string) map[string]fileID {
	t.Helper()
	files := map[string]fileID{}
	entries, err := os.ReadDir(filepath.Join(root, "blobs", "sha256"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	for _, e := range entries {
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(root, "blobs", "sha256", e.Name()), &st); err != nil {
			t.Fatal(err)
		}
		files[e.Name()] = fileID{ino: st.Ino, mtime: st.Mtim.Nano(), size: st.Size}
	}
	return files
}

// ingestFiles lists ROOT/ingest (unfinished ingests).
func ingestFiles(t *testing.T, root string) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(root, "ingest"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// diskState is the part of state that lives in ROOT: blob files with
// inode and mtime, and unfinished ingests.
func (d *daemon) diskState(t *testing.T) string {
	t.Helper()
	var out []string
	files := rootBlobFiles(t, d.root)
	for _, name := range sortedKeys(files) {
		f := files[name]
		out = append(out, fmt.Sprintf("disk blobs/sha256/%s size=%d ino=%d mtime=%d", name, f.size, f.ino, f.mtime))
	}
	for _, name := range ingestFiles(t, d.root) {
		out = append(out, "disk ingest/"+name)
	}
	return strings.Join(out, "\n")
}

// state is a snapshot of everything a refusal must not change: the blob
// files on disk (with inode and mtime), the ingest directory, and every
// node of the mount with its type, size, xattrs and, for images, content.
func (d *daemon) state(t *testing.T) string {
	t.Helper()
	out := []string{d.diskState(t)}
	err := filepath.WalkDir(d.mnt, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(d.mnt, p)
		if e.IsDir() && e.Name() == "rootfs" {
			return fs.SkipDir // a read-only view of images/, shown there
		}
		info, err := e.Info()
		if err != nil {
			return err
		}
		line := fmt.Sprintf("node %s %v", rel, info.Mode().Type())
		if info.Mode().IsRegular() {
			// Files carry their records' times; directories that are no
			// record show the daemon's start.
			line += fmt.Sprintf(" size=%d mtime=%d", info.Size(), info.ModTime().UnixNano())
			if isImagePath(rel) {
				data, err := os.ReadFile(p)
				if err != nil {
					return err
				}
				line += " sha256=" + sha256Hex(data)
			}
		}
		out = append(out, line)
		labels, err := xattrs(p)
		if err != nil {
			return fmt.Errorf("xattrs of %s: %w", rel, err)
		}
		for _, k := range sortedKeys(labels) {
			out = append(out, fmt.Sprintf("xattr %s %s=%q", rel, k, labels[k]))
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walk %s: %v", d.mnt, err)
	}
	return strings.Join(out, "\n")
}

// isImagePath: rel is ns/<ns>/images/...
func isImagePath(rel string) bool {
	parts := strings.Split(rel, string(filepath.Separator))
	return len(parts) > 3 && parts[0] == "ns" && parts[2] == "images"
}

// xattrs reads every extended attribute of p.
func xattrs(p string) (map[string]string, error) {
	size, err := unix.Llistxattr(p, nil)
	if err != nil {
		return nil, err
	}
	buf := make([]byte, size)
	n, err := unix.Llistxattr(p, buf)
	if err != nil {
		return nil, err
	}
	m := map[string]string{}
	for _, name := range strings.Split(string(buf[:n]), "\x00") {
		if name == "" {
			continue
		}
		vsize, err := unix.Lgetxattr(p, name, nil)
		if err != nil {
			return nil, fmt.Errorf("getxattr %s: %w", name, err)
		}
		v := make([]byte, vsize)
		vn, err := unix.Lgetxattr(p, name, v)
		if err != nil {
			return nil, fmt.Errorf("getxattr %s: %w", name, err)
		}
		m[name] = string(v[:vn])
	}
	return m, nil
}

// assertUnchanged compares the store with a snapshot taken before a
// refused operation.
func (d *daemon) assertUnchanged(t *testing.T, what, before string) {
	t.Helper()
	after := d.state(t)
	if after != before {
		t.Errorf("%s changed the store:\n%s", what, lineDiff(before, after))
	}
}

// lineDiff shows lines only in a (-) and only in b (+).
func lineDiff(a, b string) string {
	inA, inB := map[string]bool{}, map[string]bool{}
	for _, l := range strings.Split(a, "\n") {
		inA[l] = true
	}
	for _, l := range strings.Split(b, "\n") {
		inB[l] = true
	}
	var out []string
	for _, l := range strings.Split(a, "\n") {
		if !inB[l] {
			out = append(out, "- "+l)
		}
	}
	for _, l := range strings.Split(b, "\n") {
		if !inA[l] {
			out = append(out, "+ "+l)
		}
	}
	return strings.Join(out, "\n")
}

func sha256Hex(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// inode is `stat -c %i` of p (relative to the mountpoint).
func (d *daemon) inode(t *testing.T, rel string) string {
	t.Helper()
	return strings.TrimSpace(mustRun(t, d.mnt, "stat", "-c", "%i", rel))
}
