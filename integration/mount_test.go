package integration

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestMountShowsInProcMounts(t *testing.T) {
	t.Parallel()
	d := startNsfs(t)
	data, err := os.ReadFile("/proc/mounts")
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 3 && f[1] == d.mnt {
			found = true
			if f[2] != "fuse.nsfs" {
				t.Errorf("/proc/mounts shows %s as %q, want fuse.nsfs", d.mnt, f[2])
			}
		}
	}
	if !found {
		t.Errorf("/proc/mounts does not list %s", d.mnt)
	}
	assertOutput(t, "stat -f -c %T", mustRun(t, d.mnt, "stat", "-f", "-c", "%T", "."), "fuseblk\n")
}

func TestMountEndsOnSignalsAndUnmount(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			t.Parallel()
			d := startNsfs(t)
			mustRun(t, d.mnt, "mkdir", "ns/kept")
			if code := d.signal(t, sig); code != 0 {
				t.Errorf("nsfs exited %d on %v, want 0\nstderr:\n%s", code, sig, d.logs)
			}
			if strings.Contains(d.logs.String(), "panic") {
				t.Errorf("nsfs panicked on %v:\n%s", sig, d.logs)
			}
			// The mountpoint is an ordinary empty directory again.
			if entries, err := os.ReadDir(d.mnt); err != nil || len(entries) != 0 {
				t.Errorf("mountpoint after %v: %v, %v; want an empty directory", sig, entries, err)
			}
			d2 := startNsfs(t, withStore(d.root, d.mnt))
			mustRun(t, d2.mnt, "stat", "ns/kept")
		})
	}
	t.Run("umount", func(t *testing.T) {
		t.Parallel()
		d := startNsfs(t)
		d.stop(t) // umount MNT, then the daemon must exit 0 by itself
		if d.cmd.ProcessState.ExitCode() != 0 {
			t.Errorf("nsfs exited %d after umount, want 0", d.cmd.ProcessState.ExitCode())
		}
	})
}

func TestSecondMountOfTheSameRootFailsAtOnce(t *testing.T) {
	t.Parallel()
	d := startNsfs(t)
	mustRun(t, d.mnt, "mkdir", "ns/foo")
	before := d.state(t)
	mnt2 := filepath.Join(t.TempDir(), "mnt2")
	if err := os.Mkdir(mnt2, 0o755); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := command(ctx, nsfsBin, "mount", "--root", d.root, mnt2)
	var stderr syncBuffer
	cmd.Stderr = &stderr
	suiteReaper.mount(mnt2)
	start := time.Now()
	err := runChild(t, cmd)
	elapsed := time.Since(start)
	if mountedAt(t, mnt2) > 0 {
		t.Errorf("the second daemon mounted %s", mnt2)
		_, _ = runWithin(t, toolTimeout, "umount", "-l", mnt2)
	}
	if err == nil {
		t.Fatalf("a second mount of %s succeeded", d.root)
	}
	if elapsed > time.Second {
		t.Errorf("the second mount took %v to fail, want under a second", elapsed)
	}
	if cmd.ProcessState == nil || cmd.ProcessState.ExitCode() <= 0 {
		t.Errorf("the second mount ended with %v, want a non-zero exit", err)
	}
	if !strings.Contains(stderr.String(), d.root) {
		t.Errorf("the second mount's message does not name the root %s: %q", d.root, stderr.String())
	}
	d.assertUnchanged(t, "a second mount of the same root", before)
	mustRun(t, d.mnt, "mkdir", "ns/bar")
}

func TestMountRecoversAfterKill9(t *testing.T) {
	t.Parallel()
	d := startNsfs(t)
	mustRun(t, d.mnt, "mkdir", "ns/foo")
	d.kill9(t)
	mustFail(t, filepath.Dir(d.mnt), "Transport endpoint is not connected", "ls", d.mnt)
	mustFail(t, filepath.Dir(d.mnt), "Transport endpoint is not connected", "stat", d.mnt)

	d2 := d.restart(t) // checks a single fuse.nsfs mount at MNT
	assertOutput(t, "ls ns after recovery", mustRun(t, d2.mnt, "ls", "ns"), lines("default", "foo"))
	mustRun(t, d2.mnt, "mkdir", "ns/bar")
}

// A live nsfs mount at the mountpoint is another daemon's, serving its
// store: a mount of another store there is refused, and covers nothing.
func TestMountRefusesALiveNsfsMountpoint(t *testing.T) {
	t.Parallel()
	d := startNsfs(t)
	d.waitForLog(t, "nsfs: serving ")
	mustRun(t, d.mnt, "mkdir", "ns/foo")
	before := d.state(t)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	otherRoot := filepath.Join(t.TempDir(), "other")
	cmd := command(ctx, nsfsBin, "mount", "--root", otherRoot, d.mnt)
	var stderr syncBuffer
	cmd.Stderr = &stderr
	err := runChild(t, cmd)
	if n := countMounts(t, d.mnt); n != 1 {
		t.Errorf("%d fuse.nsfs mounts at %s after a second daemon tried it, want 1\n%s", n, d.mnt, stackedMountsReport(d.mnt, d))
		// The stacked one is dead now (its daemon was killed): take it
		// away, so that the first one can be unmounted.
		_, _ = runWithin(t, toolTimeout, "umount", "-l", d.mnt)
	}
	if ctx.Err() != nil {
		t.Fatalf("the second daemon served on top of the first until killed\nstderr:\n%s", &stderr)
	}
	if err == nil || cmd.ProcessState.ExitCode() <= 0 {
		t.Errorf("mounting over a live nsfs mount ended with %v, want a non-zero exit", err)
	}
	want := fmt.Sprintf("nsfs: mount: %s is already an nsfs mount, of store %s, and its daemon is serving it: "+
		"mounting on top would hide it; unmount it first (nsfs umount %s)\n", d.mnt, d.root, d.mnt)
	if got := stderr.String(); got != want {
		t.Errorf("stderr of mounting over a live nsfs mount:\n got: %q\nwant: %q", got, want)
	}
	d.assertUnchanged(t, "a mount refused over a live one", before)
	// The mountpoint is checked before the store is made (s14, finding 7).
	if _, err := os.Lstat(otherRoot); !os.IsNotExist(err) {
		t.Errorf("the refused mount made its store %s: %v", otherRoot, err)
	}
	mustRun(t, d.mnt, "mkdir", "ns/bar")
}

// A mountpoint that is no directory, or a directory that holds files
// (which the mount would hide), is refused before the store is made
// (s14, findings 7 and 8); --nonempty mounts over the latter.
func TestMountRefusesAFileOrANonEmptyDirectory(t *testing.T) {
	t.Parallel()
	requireMount(t)
	base := t.TempDir()
	file := filepath.Join(base, "file")
	full := filepath.Join(base, "full")
	if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(full, "kept"), 0o755); err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(base, "root")
	for _, tc := range []struct{ mnt, want string }{
		{file, fmt.Sprintf("nsfs: mount: %s is not a directory: name a directory (one that does not exist is made)\n", file)},
		{full, fmt.Sprintf("nsfs: mount: %s is not empty (it holds kept): a mount would hide what it holds; "+
			"name an empty directory, or mount over it with --nonempty\n", full)},
	} {
		suiteReaper.mount(tc.mnt)
		r := run(t, base, nsfsBin, "mount", "--root", root, tc.mnt)
		if r.code != 1 || r.stderr != tc.want {
			t.Errorf("mount at %s: want exit 1 and %q, got %s", tc.mnt, tc.want, r)
		}
		if mountedAt(t, tc.mnt) > 0 {
			t.Errorf("nsfs mounted %s", tc.mnt)
			_, _ = runWithin(t, toolTimeout, "umount", "-l", tc.mnt)
		}
		if _, err := os.Lstat(root); !os.IsNotExist(err) {
			t.Errorf("the refused mount at %s made its store %s: %v", tc.mnt, root, err)
		}
	}
	if _, err := os.Stat(filepath.Join(full, "kept")); err != nil {
		t.Errorf("the refused mount hid %s/kept: %v", full, err)
	}

	d := startNsfs(t, withStore(root, full), withFlags("--nonempty"))
	assertOutput(t, "ls of a mount made with --nonempty", mustRun(t, d.mnt, "ls"), lines("ns"))
}

// Dead mounts stacked at the mountpoint (here: a bind mount of the mount
// onto itself, both dead once the daemon is killed) are all recovered:
// the new mount covers none of them.
func TestMountRecoversStackedDeadMounts(t *testing.T) {
	t.Parallel()
	d := startNsfs(t)
	d.waitForLog(t, "nsfs: serving ") // not killed during go-fuse's own open of the mount
	mustRun(t, d.mnt, "mkdir", "ns/foo")
	mustRun(t, "/", "mount", "--bind", d.mnt, d.mnt)
	if n := countMounts(t, d.mnt); n != 2 {
		t.Fatalf("%d fuse.nsfs mounts at %s after mount --bind onto itself, want 2", n, d.mnt)
	}
	d.kill9(t)

	d2 := d.restart(t) // checks a single fuse.nsfs mount at MNT
	if n := strings.Count(d2.logs.String(), "recovered "+d2.mnt+": a dead mount (its daemon died) was unmounted"); n != 2 {
		t.Errorf("the new daemon logged %d recoveries of a dead mount, want 2:\n%s", n, d2.logs)
	}
	assertOutput(t, "ls ns after recovery", mustRun(t, d2.mnt, "ls", "ns"), lines("default", "foo"))
}

func TestMountCreatesItsRoot(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	root := filepath.Join(base, "a", "b", "store")
	mnt := filepath.Join(base, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	d := startNsfs(t, withStore(root, mnt))
	for _, p := range []string{"meta.db", "blobs/sha256", "ingest"} {
		if _, err := os.Stat(filepath.Join(root, p)); err != nil {
			t.Errorf("a fresh root has no %s: %v", p, err)
		}
	}
	assertOutput(t, "ls ns of a fresh store", mustRun(t, d.mnt, "ls", "ns"), lines("default"))
}

func TestMountRefusesBadArguments(t *testing.T) {
	t.Parallel()
	requireMount(t)
	base := t.TempDir()
	mnt := filepath.Join(base, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	cases := [][]string{
		{"mount", "--root", filepath.Join(base, "root")},                                    // no mountpoint
		{"mount", "--root", filepath.Join(base, "root"), "--content-sharing", "bogus", mnt}, // bad policy
	}
	for _, args := range cases {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		cmd := command(ctx, nsfsBin, args...)
		out, err := combinedOutput(t, cmd)
		cancel()
		if err == nil || cmd.ProcessState.ExitCode() <= 0 {
			t.Errorf("nsfs %s: %v, want a non-zero exit\n%s", strings.Join(args, " "), err, out)
		}
		if len(out) == 0 {
			t.Errorf("nsfs %s failed without saying why", strings.Join(args, " "))
		}
		if mountedAt(t, mnt) > 0 {
			t.Errorf("nsfs %s mounted %s", strings.Join(args, " "), mnt)
			_, _ = runWithin(t, toolTimeout, "umount", "-l", mnt)
		}
	}
	if !strings.Contains(runNsfs(t, "mount", "--root", filepath.Join(base, "root"), "--content-sharing", "bogus", mnt), "bogus") {
		t.Errorf("the refusal of --content-sharing bogus does not name the value")
	}
}

// runNsfs runs the binary to completion and returns its combined output.
func runNsfs(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, _ := combinedOutput(t, command(ctx, nsfsBin, args...))
	return string(out)
}

// fuseRequests is the operations the daemon received (from its --debug
// log) between two LOOKUPs of marker names the test sends; the kernel never
// caches a miss (no negative timeout), so the markers always arrive.
func fuseRequests(t *testing.T, d *daemon, fn func()) []string {
	t.Helper()
	marker := func(name string) {
		if _, err := os.Stat(d.path("ns", name)); err == nil {
			t.Fatalf("marker ns/%s exists", name)
		}
		d.waitForLog(t, `"`+name+`"`)
	}
	begin := fmt.Sprintf("marker-%d-begin", time.Now().UnixNano())
	end := strings.Replace(begin, "begin", "end", 1)
	marker(begin)
	fn()
	marker(end)
	var ops []string
	inside := false
	for _, line := range strings.Split(d.logs.String(), "\n") {
		// nsfs: rx 18: LOOKUP n2  "default"  p20266
		_, rest, ok := strings.Cut(line, " rx ")
		switch {
		case !ok:
		case strings.Contains(line, `"`+begin+`"`):
			inside = true
		case strings.Contains(line, `"`+end+`"`):
			return ops
		case inside:
			if f := strings.Fields(rest); len(f) >= 3 {
				op := f[1] + " " + f[2]
				if f[1] == "LOOKUP" && len(f) >= 4 {
					op += " " + f[3]
				}
				ops = append(ops, op)
			}
		}
	}
	t.Fatalf("no request for %s in the daemon's log", end)
	return nil
}

// The kernel answers a repeated stat from its cache (entry and attr
// timeouts), and plain ls of a big directory does not look up its entries.
func TestKernelCachesStatAndLsDoesNotLookUpEntries(t *testing.T) {
	t.Parallel()
	d := startNsfs(t, withFlags("--debug"))
	img := newImage(111, "amd64", 100)
	d.putImage(t, "default", "lib/app:0", img)
	const n = 300
	for i := 1; i < n; i++ {
		if err := os.Link(d.path(imagePath("default", "lib/app:0")), d.path(imagePath("default", fmt.Sprintf("lib/app:%d", i)))); err != nil {
			t.Fatalf("ln: %v", err)
		}
	}

	p := d.path(imagePath("default", "lib/app:7"))
	if _, err := os.Stat(p); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	ops := fuseRequests(t, d, func() {
		for i := 0; i < 100; i++ {
			if _, err := os.Stat(p); err != nil {
				t.Fatal(err)
			}
		}
	})
	if time.Since(start) < 500*time.Millisecond { // well inside the 1 s timeouts
		if len(ops) != 0 {
			t.Errorf("100 stats of a cached image sent %d requests to the daemon: %v", len(ops), ops)
		}
	} else {
		t.Logf("the stats took %v, longer than the cache may hold them; not checked", time.Since(start))
	}

	var out string
	ops = fuseRequests(t, d, func() { out = mustRun(t, d.mnt, "ls", imagePath("default", "lib")) })
	if got := strings.Count(out, "\n"); got != n {
		t.Errorf("ls listed %d images, want %d", got, n)
	}
	lookups := 0
	for _, op := range ops {
		if strings.HasPrefix(op, "LOOKUP") && strings.Contains(op, `"app:`) {
			lookups++
		}
	}
	if lookups != 0 || len(ops) > 20 {
		t.Errorf("ls of %d images sent %d requests, %d of them per-entry lookups: %v", n, len(ops), lookups, ops)
	}
}

// The default root is /var/lib/nsfs for root, else $XDG_DATA_HOME/nsfs,
// else ~/.local/share/nsfs.
func TestMountDefaultRoot(t *testing.T) {
	t.Parallel()
	requireMount(t)

	t.Run("root", func(t *testing.T) {
		// In a private mount namespace a temporary directory stands in for
		// /var/lib, so the machine's /var/lib/nsfs is never touched.
		varLib := t.TempDir()
		mnt := filepath.Join(t.TempDir(), "mnt")
		script := dropCopiedNsfsMounts + fmt.Sprintf(`set -e
mount --bind %[1]s /var/lib
%[2]s mount %[3]s 2>%[1]s/daemon.log &
pid=$!
i=0
until ls %[3]s/ns >/dev/null 2>&1; do
	i=$((i+1)); [ $i -lt 500 ] || { echo "not mounted after 5s" >&2; kill $pid; exit 1; }
	sleep 0.01
done
ls %[3]s/ns
umount %[3]s
wait $pid`, varLib, nsfsBin, mnt)
		out := mustRun(t, "/", "unshare", "--mount", "--propagation", "private", "sh", "-c", script)
		assertOutput(t, "ls ns of the default store", out, lines("default"))
		if _, err := os.Stat(filepath.Join(varLib, "nsfs", "meta.db")); err != nil {
			t.Errorf("root's default store is not /var/lib/nsfs: %v", err)
		}
	})

	for _, c := range []struct{ name, xdg, want string }{
		{"XDG_DATA_HOME", "xdg", "xdg/nsfs"},
		{"HOME", "", "home/.local/share/nsfs"},
	} {
		t.Run(c.name, func(t *testing.T) {
			// A directory the unprivileged user owns.
			base, err := os.MkdirTemp("", "nsfs-user-")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.RemoveAll(base) })
			const nobody = 65534
			for _, dir := range []string{base, filepath.Join(base, "home"), filepath.Join(base, "mnt")} {
				if err := os.MkdirAll(dir, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.Chown(dir, nobody, nobody); err != nil {
					t.Fatal(err)
				}
			}
			env := []string{"PATH=/usr/bin:/bin", "HOME=" + filepath.Join(base, "home")}
			if c.xdg != "" {
				env = append(env, "XDG_DATA_HOME="+filepath.Join(base, c.xdg))
			}
			mnt := filepath.Join(base, "mnt")
			cmd := childCommand(nsfsBin, "mount", mnt)
			cmd.Env = env
			var stderr syncBuffer
			cmd.Stderr = &stderr
			cmd.SysProcAttr.Credential = &syscall.Credential{Uid: nobody, Gid: nobody}
			suiteReaper.mount(mnt)
			proc, err := spawnWithin(t, cmd, toolTimeout)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				if mountedAt(t, mnt) > 0 {
					_, _ = runWithin(t, toolTimeout, "umount", mnt)
				}
				select {
				case <-proc.exited:
				case <-time.After(exitTimeout):
					_ = killGroup(cmd)
					<-proc.exited
				}
				if mountedAt(t, mnt) > 0 {
					_, _ = runWithin(t, toolTimeout, "umount", "-l", mnt)
				}
			})
			// The store is opened before the mount, so it shows even where
			// this user may not mount (/dev/fuse only for root).
			store := filepath.Join(base, c.want)
			deadline := time.Now().Add(readyTimeout)
			for {
				if _, err := os.Stat(filepath.Join(store, "meta.db")); err == nil {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("no store at %s after %v; stderr:\n%s", store, readyTimeout, stderr.String())
				}
				time.Sleep(10 * time.Millisecond)
			}
		})
	}
}
