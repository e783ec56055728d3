package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// `make run` serves ./.nsfs at ./mnt, passes ARGS to nsfs mount, and
// after its daemon was killed (leaving ./mnt a dead mount) starts again.
// It runs the project's Makefile in a directory of its own, with the
// suite's nsfs as bin/nsfs and GO=true, so that the build is the suite's.
func TestMakeRunRecoversAndTakesArgs(t *testing.T) {
	t.Parallel()
	requireMount(t)
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("make is not installed")
	}
	makefile, err := filepath.Abs("../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(nsfsBin, filepath.Join(dir, "bin", "nsfs")); err != nil {
		t.Fatal(err)
	}
	mnt := filepath.Join(dir, "mnt")
	t.Cleanup(func() {
		for mountedAt(t, mnt) > 0 {
			if err := syscall.Unmount(mnt, syscall.MNT_DETACH); err != nil {
				t.Errorf("unmount %s: %v", mnt, err)
				return
			}
		}
	})

	// makeRun starts `make run`, waits until mnt serves, and returns the
	// make process and the channel closed at its exit.
	makeRun := func(args ...string) (*exec.Cmd, <-chan struct{}) {
		cmd := childCommand("make", append([]string{"-f", makefile, "GO=true", "run"}, args...)...)
		cmd.Dir = dir
		var out syncBuffer
		cmd.Stdout, cmd.Stderr = &out, &out
		exited := startBackground(t, cmd)
		deadline := time.Now().Add(10 * time.Second)
		for {
			// statfs: the kernel asks the daemon (stat may answer from
			// its cache, also of a dead mount).
			var st syscall.Statfs_t
			if countMounts(t, mnt) > 0 && syscall.Statfs(mnt, &st) == nil {
				return cmd, exited
			}
			select {
			case <-exited:
				t.Fatalf("make run %s exited before mounting:\n%s", strings.Join(args, " "), out.String())
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("make run %s: no nsfs at %s after 10s:\n%s", strings.Join(args, " "), mnt, out.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	cmd, exited := makeRun("ARGS=--allow-other")
	if opts := mustRun(t, dir, "findmnt", "-n", "-o", "OPTIONS", mnt); !strings.Contains(opts, "allow_other") {
		t.Errorf("make run ARGS=--allow-other: the mount's options are %q, want allow_other", opts)
	}
	mustRun(t, mnt, "mkdir", "ns/foo")
	// A crash: make and its daemon killed, mnt left a dead mount.
	if err := killGroup(cmd); err != nil {
		t.Fatal(err)
	}
	<-exited
	var st syscall.Statfs_t
	assertErrno(t, "statfs of mnt after the crash", syscall.Statfs(mnt, &st), syscall.ENOTCONN)
	// Once the kernel's cached attributes of mnt expire (a second), stat
	// fails too: mkdir -p mnt, which make run did, fails then.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if _, err := os.Stat(mnt); err != nil {
			assertErrno(t, "stat of mnt after the crash", err, syscall.ENOTCONN)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("stat of %s still succeeds 10s after its daemon was killed", mnt)
		}
	}
	mustFail(t, dir, "Transport endpoint is not connected", "mkdir", "-p", "mnt")

	cmd, exited = makeRun()
	assertOutput(t, "ls mnt/ns after the crash and make run", mustRun(t, dir, "ls", "mnt/ns"), lines("default", "foo"))
	if opts := mustRun(t, dir, "findmnt", "-n", "-o", "OPTIONS", mnt); strings.Contains(opts, "allow_other") {
		t.Errorf("make run without ARGS: the mount's options are %q, want no allow_other", opts)
	}
	// Ctrl-C: the terminal signals the whole foreground group.
	if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		t.Fatal("make run still running 10s after SIGINT")
	}
	if n := countMounts(t, mnt); n != 0 {
		t.Errorf("after Ctrl-C of make run: %d nsfs mounts at %s, want none", n, mnt)
	}
}
