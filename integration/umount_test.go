package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// nsfs umount unmounts; the daemon exits 0.
func TestUmountCommand(t *testing.T) {
	d := startNsfs(t)
	mustRun(t, d.mnt, "mkdir", "ns/foo")
	assertOutput(t, "nsfs umount", mustRun(t, "/", nsfsBin, "umount", d.mnt), lines("unmounted "+d.mnt))
	d.finished = true
	if code, _ := d.waitExit(t, exitTimeout); code != 0 {
		t.Errorf("the daemon exited %d after nsfs umount, want 0", code)
	}
	if n := mountedAt(t, d.mnt); n != 0 {
		t.Errorf("%d mounts left at %s", n, d.mnt)
	}
	// What was made survives.
	d = startNsfs(t, withStore(d.root, d.mnt))
	assertOutput(t, "ls ns", mustRun(t, d.mnt, "ls", "ns"), lines("default", "foo"))
}

// A busy mount (a process has its working directory in it, another a file
// open) is detached lazily: it leaves the tree at once, the users keep
// working, and the daemon exits 0 when the last one leaves.
func TestUmountBusyDetachesLazily(t *testing.T) {
	d := startNsfs(t)
	mustRun(t, d.mnt, "mkdir", "ns/foo")
	// A shell inside the mount, waiting for a line on stdin.
	shell := childCommand("sh", "-c", "read line; ls")
	shell.Dir = d.path("ns", "foo")
	stdin, err := shell.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out := &syncBuffer{}
	shell.Stdout = out
	exited := startBackground(t, shell)
	dir, err := os.Open(d.path("ns"))
	if err != nil {
		t.Fatal(err)
	}
	defer dir.Close()

	assertOutput(t, "nsfs umount of a busy mount", mustRun(t, "/", nsfsBin, "umount", d.mnt),
		lines(d.mnt+" was busy: detached lazily; it goes away when the last user leaves"))
	d.finished = true
	if n := mountedAt(t, d.mnt); n != 0 {
		t.Errorf("%d mounts still at %s after the lazy unmount", n, d.mnt)
	}
	// The users still work in it.
	names, err := dir.Readdirnames(-1)
	if err != nil || len(names) != 2 {
		t.Errorf("readdir of the detached ns/: %v, %v", names, err)
	}
	select {
	case <-d.exited:
		t.Fatal("the daemon exited while its mount was still in use")
	default:
	}
	if strings.Contains(d.logs.String(), "unmounted ") {
		t.Errorf("the daemon logged an unmount while its mount was still in use:\n%s", d.logs)
	}
	dir.Close()
	stdin.Write([]byte("go\n"))
	<-exited
	if !shell.ProcessState.Success() {
		t.Errorf("the shell in the detached mount: %v", shell.ProcessState)
	}
	if code, _ := d.waitExit(t, exitTimeout); code != 0 {
		t.Errorf("the daemon exited %d once its last user left, want 0\nstderr:\n%s", code, d.logs)
	}
	// The lazy unmount completed now, and the log says when.
	d.waitForLog(t, "nsfs: unmounted "+d.mnt+" from outside (umount, or the last user of a lazy unmount left)\n")
}

// A dead mount (its daemon was killed) is unmounted, and said to be dead.
func TestUmountDeadMount(t *testing.T) {
	d := startNsfs(t)
	// Killed only once the mount is done: until then go-fuse holds a file
	// of the mount open (its poll probe), and a daemon killed with it open
	// hangs in its own exit, flushing it to itself.
	d.waitForLog(t, "nsfs: serving ")
	d.kill9(t)
	var err error
	deadline := time.Now().Add(exitTimeout)
	for _, err = os.Stat(d.mnt); err == nil && time.Now().Before(deadline); _, err = os.Stat(d.mnt) {
		time.Sleep(50 * time.Millisecond) // the kernel's cached attributes expire
	}
	assertOutput(t, "nsfs umount of a dead mount", mustRun(t, "/", nsfsBin, "umount", d.mnt),
		lines("unmounted "+d.mnt+" (a dead mount: its daemon had died)"))
	if n := mountedAt(t, d.mnt); n != 0 {
		t.Errorf("%d mounts still at %s", n, d.mnt)
	}
}

// Anything but an nsfs mount is refused, and left alone.
func TestUmountRefusesWhatIsNotNsfs(t *testing.T) {
	requireMount(t)
	mustFail(t, "/", "nsfs: / is not an nsfs mount (its filesystem is ", nsfsBin, "umount", "/")
	dir := t.TempDir()
	mustFail(t, "/", "nsfs: "+dir+" is not a mount point", nsfsBin, "umount", dir)
	mustFail(t, "/", "no such file or directory", nsfsBin, "umount", filepath.Join(dir, "missing"))
	mustFail(t, "/", "umount: expected one MOUNTPOINT argument, got 0", nsfsBin, "umount")
}

// A daemon that does not answer (stopped here; killed while stuck in the
// kernel is the same to the mount) does not keep the mount: nsfs umount
// aborts its connection and unmounts, and the daemon, once it runs again,
// finds its connection gone and exits 0.
func TestUmountHungDaemon(t *testing.T) {
	d := startNsfs(t)
	d.waitForLog(t, "nsfs: serving ")
	if err := d.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	d.finished = true
	defer d.cmd.Process.Signal(syscall.SIGCONT)
	start := time.Now()
	assertOutput(t, "nsfs umount of a hung daemon's mount", mustRun(t, "/", nsfsBin, "umount", d.mnt), lines(
		d.mnt+" did not answer for a second (a hung or killed daemon): its connection was aborted",
		"unmounted "+d.mnt))
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("nsfs umount took %v", took)
	}
	if n := mountedAt(t, d.mnt); n != 0 {
		t.Errorf("%d mounts still at %s", n, d.mnt)
	}
	d.cmd.Process.Signal(syscall.SIGCONT)
	if code, _ := d.waitExit(t, exitTimeout); code != 0 {
		t.Errorf("the daemon exited %d once it ran again, want 0\nstderr:\n%s", code, d.logs)
	}
}

// nsfs mount recovers a mountpoint whose daemon does not answer, instead
// of waiting for it forever.
func TestMountRecoversAHungMount(t *testing.T) {
	hung := startNsfs(t)
	hung.waitForLog(t, "nsfs: serving ")
	if err := hung.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	hung.finished = true
	defer hung.cmd.Process.Signal(syscall.SIGCONT)
	d := startNsfs(t, withStore(filepath.Join(t.TempDir(), "other"), hung.mnt))
	d.waitForLog(t, "recovered "+d.mnt+": the mount of a daemon that did not answer (hung, or killed while stuck) was aborted and unmounted")
	mustRun(t, d.mnt, "mkdir", "ns/foo")
	hung.cmd.Process.Signal(syscall.SIGCONT)
	if code, _ := hung.waitExit(t, exitTimeout); code != 0 {
		t.Errorf("the hung daemon exited %d once it ran again, want 0\nstderr:\n%s", code, hung.logs)
	}
}

// A store whose mount was detached lazily is still locked by its daemon,
// which serves the users left; mount and fsck of it say so, with the
// daemon's PID, instead of asking to unmount a mountpoint that is in no
// mount table any more (s14, finding 6). While mounted, they name the
// mountpoint.
func TestLockedStoreNamesItsDaemon(t *testing.T) {
	d := startNsfs(t)
	locked := fmt.Sprintf("nsfs: store %s is already in use by another nsfs (%s is locked): store in use, by PID %d",
		d.root, filepath.Join(d.root, "meta.db"), d.pid())
	mounted := fmt.Sprintf("%s; it is mounted at %s: unmount it first (nsfs umount %s)\n", locked, d.mnt, d.mnt)
	if r := run(t, "/", nsfsBin, "fsck", "--root", d.root); r.code != 1 || r.stderr != mounted {
		t.Errorf("fsck of a mounted store: want exit 1 and %q, got %s", mounted, r)
	}

	// A shell inside the mount, waiting for a line on stdin.
	shell := childCommand("sh", "-c", "read line")
	shell.Dir = d.path("ns", "default")
	stdin, err := shell.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	exited := startBackground(t, shell)
	assertOutput(t, "nsfs umount of a busy mount", mustRun(t, "/", nsfsBin, "umount", d.mnt),
		lines(d.mnt+" was busy: detached lazily; it goes away when the last user leaves"))
	d.finished = true

	detached := fmt.Sprintf("%s, whose mount is in no mount table: a lazily unmounted (detached) mount is served until its last user leaves "+
		"(a working directory or an open file in it); the daemon exits then, or kill %d ends it now\n", locked, d.pid())
	mnt2 := filepath.Join(t.TempDir(), "mnt2")
	suiteReaper.mount(mnt2)
	for _, args := range [][]string{{"fsck", "--root", d.root}, {"mount", "--root", d.root, mnt2}} {
		if r := run(t, "/", nsfsBin, args...); r.code != 1 || r.stderr != detached {
			t.Errorf("want exit 1 and %q, got %s", detached, r)
		}
	}
	if mountedAt(t, mnt2) > 0 {
		t.Errorf("the refused mount mounted %s", mnt2)
		_, _ = runWithin(t, toolTimeout, "umount", "-l", mnt2)
	}

	stdin.Write([]byte("go\n"))
	<-exited
	if code, _ := d.waitExit(t, exitTimeout); code != 0 {
		t.Errorf("the daemon exited %d once its last user left, want 0\nstderr:\n%s", code, d.logs)
	}
}
