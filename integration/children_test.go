package integration

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"github.com/nsfs/nsfs/mountinfo"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Every process the suite starts is made by command or childCommand and
// started by spawn (through run, startBackground, startNsfs, ...), so
// that none outlives its deadline, its test or the suite:
//   - it leads a process group of its own, and killing it kills the
//     group: a daemon a shell script put in the background dies with the
//     script;
//   - it gets SIGKILL when the test process dies (go test's -timeout
//     panics without running any cleanup);
//   - Wait stops reading its output childWaitDelay after it ended, so a
//     descendant holding the pipe cannot hang the test;
//   - what it left behind in its group when it ended is killed;
//   - the reaper, a process outliving the suite, kills every group still
//     there and lazily unmounts every mount the suite made once the
//     suite's process is gone, however it ended.

// childWaitDelay is how long Wait keeps reading a child's output after
// the child ended or was killed.
const childWaitDelay = 5 * time.Second

// command is exec.CommandContext for a child of the suite: ctx is its
// deadline, and cancelling it kills the child's process group.
func command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, name, args...)
	prepareChild(cmd)
	return cmd
}

// childCommand is a child whose deadline spawn's caller gives.
func childCommand(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	prepareChild(cmd)
	return cmd
}

// prepareChild gives cmd its own process group, SIGKILL at the test
// process's death, a group kill as its cancel, and a WaitDelay. Callers
// may add to cmd.SysProcAttr afterwards (a Credential).
func prepareChild(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	cmd.WaitDelay = childWaitDelay
	if cmd.Cancel != nil { // made by CommandContext
		cmd.Cancel = func() error { return killGroup(cmd) }
	}
}

// killGroup kills the process group cmd leads (its PID is the group's).
func killGroup(cmd *exec.Cmd) error {
	if cmd.Process == nil {
		return nil
	}
	err := syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	if errors.Is(err, syscall.ESRCH) {
		return os.ErrProcessDone
	}
	return err
}

// child is a started child of the suite.
type child struct {
	cmd     *exec.Cmd
	exited  chan struct{} // closed once Wait returned
	waitErr error         // valid once exited is closed
	expired atomic.Bool   // its limit passed and its group was killed
}

// spawn starts cmd (made by command or childCommand) and waits for it in
// the background. Past limit (none if 0: the caller has a context or a
// watchdog) its group is killed. Once it has ended, whatever it left in
// its group is killed too.
func spawn(t testing.TB, cmd *exec.Cmd) (*child, error) {
	return spawnWithin(t, cmd, 0)
}

func spawnWithin(t testing.TB, cmd *exec.Cmd, limit time.Duration) (*child, error) {
	if cmd.SysProcAttr == nil || !cmd.SysProcAttr.Setpgid || cmd.WaitDelay == 0 {
		panic(fmt.Sprintf("%s was not made by command or childCommand", cmd.Path))
	}
	if t != nil {
		checkInheritableDescriptors(t)
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	suiteReaper.group(cmd.Process.Pid)
	c := &child{cmd: cmd, exited: make(chan struct{})}
	var timer *time.Timer
	if limit > 0 {
		timer = time.AfterFunc(limit, func() {
			c.expired.Store(true)
			_ = killGroup(cmd)
		})
	}
	go func() {
		c.waitErr = cmd.Wait()
		if timer != nil {
			timer.Stop()
		}
		_ = killGroup(cmd) // orphans it left in its group
		close(c.exited)
	}()
	return c, nil
}

// runChild runs cmd (made by command, with its deadline) to its end.
func runChild(t testing.TB, cmd *exec.Cmd) error {
	c, err := spawn(t, cmd)
	if err != nil {
		return err
	}
	<-c.exited
	return c.waitErr
}

// combinedOutput is cmd.CombinedOutput for a child of the suite.
func combinedOutput(t testing.TB, cmd *exec.Cmd) ([]byte, error) {
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := runChild(t, cmd)
	return []byte(out.String()), err
}

// runWithin runs name args with a deadline of limit and returns its
// combined output (for commands whose output only explains a failure).
func runWithin(t testing.TB, limit time.Duration, name string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	return combinedOutput(t, command(ctx, name, args...))
}

// inheritableReported keeps the descriptor check from repeating itself.
var inheritableReported sync.Map

// checkInheritableDescriptors fails t when the test process holds a
// descriptor without close-on-exec (besides stdin, stdout, stderr): every
// child started now, by any test, would inherit it.
func checkInheritableDescriptors(t testing.TB) {
	t.Helper()
	// Under ForkLock: a descriptor withoutForks opened is closed before
	// any child can be made, so it is not reported.
	syscall.ForkLock.Lock()
	found := inheritableDescriptors()
	syscall.ForkLock.Unlock()
	for _, fd := range found {
		if _, seen := inheritableReported.LoadOrStore(fd, true); !seen {
			t.Errorf("descriptor %s of the test process has no close-on-exec: every child inherits it (open it with O_CLOEXEC)", fd)
		}
	}
}

// withoutForks runs fn, code we do not own that opens descriptors
// without O_CLOEXEC (go-fuse's posixtest), while no child can be made:
// it holds syscall.ForkLock for reading, as the syscall package asks of
// such code, so what fn opens and closes is never inherited.
func withoutForks(fn func()) {
	syscall.ForkLock.RLock()
	defer syscall.ForkLock.RUnlock()
	fn()
}

// inheritableDescriptors lists "N -> target" for each descriptor above 2
// without FD_CLOEXEC.
func inheritableDescriptors() []string {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return []string{"(/proc/self/fd: " + err.Error() + ")"}
	}
	var found []string
	for _, e := range entries {
		fd, err := strconv.Atoi(e.Name())
		if err != nil || fd <= 2 {
			continue
		}
		flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
		if err != nil || flags&unix.FD_CLOEXEC != 0 {
			continue // closed meanwhile (the directory's own descriptor), or fine
		}
		target, _ := os.Readlink(filepath.Join("/proc/self/fd", e.Name()))
		found = append(found, fmt.Sprintf("%d -> %s", fd, target))
	}
	return found
}

// closeInheritedOnExec marks close-on-exec the descriptors above 2 that
// the test process inherited (a job server's pipe, say): a daemon holding
// one would keep whoever waits on its other end waiting.
func closeInheritedOnExec() {
	entries, _ := os.ReadDir("/proc/self/fd")
	for _, e := range entries {
		if fd, err := strconv.Atoi(e.Name()); err == nil && fd > 2 {
			unix.CloseOnExec(fd)
		}
	}
}

// reaperEnv makes the test binary the reaper instead of the suite.
const reaperEnv = "NSFS_INTEGRATION_REAPER"

// reaperExitActed: the reaper found groups or mounts left behind.
const reaperExitActed = 3

// reaper is the suite's side of the reaper: it tells the reaper every
// process group and mount as the suite makes them. Lines are written
// whole (under PIPE_BUF), so writers need no order.
type reaper struct {
	mu  sync.Mutex
	w   *os.File // nil: no reaper (the suite cannot mount anyway)
	cmd *exec.Cmd
}

var suiteReaper reaper

// startReaper starts the reaper: the test binary run again, reading the
// suite's lines from a pipe until the suite's process is gone.
func (r *reaper) start() error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	pr, pw, err := os.Pipe() // close-on-exec: only the reaper holds the read end
	if err != nil {
		return err
	}
	defer pr.Close()
	r.cmd = exec.Command(self)
	r.cmd.Env = append(os.Environ(), reaperEnv+"=1")
	r.cmd.Stdin = pr
	r.cmd.Stderr = os.Stderr
	// Its own group, so that Ctrl-C and group kills do not reach it, and
	// no death signal: it must outlive the suite.
	r.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := r.cmd.Start(); err != nil {
		pw.Close()
		return err
	}
	r.w = pw
	return nil
}

func (r *reaper) send(line string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.w != nil {
		_, _ = io.WriteString(r.w, line+"\n")
	}
}

// group: a child's process group.
func (r *reaper) group(pgid int) { r.send("group " + strconv.Itoa(pgid)) }

// mount: a mountpoint the suite mounts (or lets a daemon mount).
func (r *reaper) mount(path string) { r.send("mount " + strconv.Quote(path)) }

// finish tells the reaper the suite is over and waits for it; it returns
// an error when the reaper had to kill or unmount something.
func (r *reaper) finish() error {
	r.mu.Lock()
	w := r.w
	r.w = nil
	r.mu.Unlock()
	if w == nil {
		return nil
	}
	w.Close()
	done := make(chan error, 1)
	go func() { done <- r.cmd.Wait() }()
	select {
	case err := <-done:
		var exitErr *exec.ExitError
		if errors.As(err, &exitErr) && exitErr.ExitCode() == reaperExitActed {
			return errors.New("process groups or mounts survived the suite (the reaper's lines above say which)")
		}
		return err
	case <-time.After(exitTimeout):
		_ = r.cmd.Process.Kill()
		return fmt.Errorf("the reaper (pid %d) did not finish in %v", r.cmd.Process.Pid, exitTimeout)
	}
}

// runReaper is the reaper's process: it reads the suite's lines until the
// suite closes the pipe or dies, then kills every registered process
// group still alive in the suite's session and lazily unmounts every
// registered mount still there. It exits reaperExitActed if it did
// anything.
func runReaper(in io.Reader) int {
	signal.Ignore(syscall.SIGINT, syscall.SIGHUP, syscall.SIGTERM)
	var groups []int
	var mounts []string
	scanner := bufio.NewScanner(in)
	for scanner.Scan() {
		kind, arg, _ := strings.Cut(scanner.Text(), " ")
		switch kind {
		case "group":
			if pgid, err := strconv.Atoi(arg); err == nil && pgid > 1 {
				groups = append(groups, pgid)
			}
		case "mount":
			if path, err := strconv.Unquote(arg); err == nil {
				mounts = append(mounts, path)
			}
		}
	}
	acted := false
	session, _ := unix.Getsid(0)
	alive := liveGroupsInSession(session)
	for _, pgid := range groups {
		if alive[pgid] {
			alive[pgid] = false // once
			fmt.Fprintf(os.Stderr, "integration reaper: killing process group %d, left by the suite\n", pgid)
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
			acted = true
		}
	}
	// Later mounts first: one may lie inside an earlier one.
	for i := len(mounts) - 1; i >= 0; i-- {
		for try := 0; try < 10 && isMountpoint(mounts[i]); try++ {
			fmt.Fprintf(os.Stderr, "integration reaper: lazily unmounting %s, left by the suite\n", mounts[i])
			if err := unix.Unmount(mounts[i], unix.MNT_DETACH); err != nil {
				fmt.Fprintf(os.Stderr, "integration reaper: umount -l %s: %v\n", mounts[i], err)
				break
			}
			acted = true
		}
	}
	if acted {
		return reaperExitActed
	}
	return 0
}

// liveGroupsInSession maps the process groups that have a live (not
// zombie) member in session. Limiting the kill to the suite's session
// keeps a group ID reused by an unrelated process out of reach.
func liveGroupsInSession(session int) map[int]bool {
	groups := map[int]bool{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid pgrp session ...; comm may hold anything.
		i := strings.LastIndexByte(string(stat), ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(stat[i+1:]))
		if len(f) < 4 || f[0] == "Z" || f[0] == "X" {
			continue
		}
		pgrp, err1 := strconv.Atoi(f[2])
		sid, err2 := strconv.Atoi(f[3])
		if err1 == nil && err2 == nil && sid == session {
			groups[pgrp] = true
		}
	}
	return groups
}

// isMountpoint: something is mounted at path in our mount namespace.
func isMountpoint(path string) bool {
	entries, err := mountinfo.Read(mountinfo.Self)
	if err != nil {
		return false
	}
	for _, m := range entries {
		if m.Mountpoint == path {
			return true
		}
	}
	return false
}
