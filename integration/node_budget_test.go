package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// nodesHeld asks the daemon for its node budget's counts (SIGUSR1, a line
// in its log) and returns the image nodes it holds and how many it has
// asked the kernel to forget.
func nodesHeld(t *testing.T, d *daemon) (held, asked int) {
	t.Helper()
	re := regexp.MustCompile(`node budget: (\d+) image nodes held \(budget \d+, at most \d+\); the kernel was asked to forget (\d+)`)
	before := len(re.FindAllString(d.logs.String(), -1))
	if err := d.cmd.Process.Signal(syscall.SIGUSR1); err != nil {
		t.Fatalf("SIGUSR1 to the daemon: %v", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		all := re.FindAllStringSubmatch(d.logs.String(), -1)
		if len(all) > before {
			last := all[len(all)-1]
			held, _ = strconv.Atoi(last[1])
			asked, _ = strconv.Atoi(last[2])
			return held, asked
		}
		if time.Now().After(deadline) {
			t.Fatalf("no node budget line in the daemon's log after SIGUSR1:\n%s", d.logs)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// The daemon keeps at most --node-budget image nodes once the kernel's
// entries for them expired, however many images are listed and stat'ed;
// the kernel forgets the others, and a forgotten image reads as before:
// ls -l lists every image with its mode, an early image has its inode
// number and its bytes, and an image open for writing across the
// evictions (never evicted: the kernel keeps what is open) commits at
// close.
func TestNodeBudgetBoundsImageNodes(t *testing.T) {
	t.Parallel()
	const budget = 2
	const n = 600
	d := startNsfs(t, withFlags("--node-budget", strconv.Itoa(budget)))
	dir := linkImages(t, d, n)
	early := []string{"app:0", "app:1", "app:2"}
	inodes := map[string]string{}
	for _, name := range early {
		inodes[name] = d.inode(t, dir+"/"+name)
	}
	want := newImage(112, "amd64", 100).manifest.data

	// An image open for writing while everything is evicted around it.
	written := d.path(dir, "app:7")
	w, err := os.OpenFile(written, os.O_WRONLY|os.O_TRUNC|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("open %s for writing: %v", written, err)
	}
	defer w.Close()
	replacement := newImage(113, "amd64", 100).manifest.data
	if _, err := w.Write(replacement); err != nil {
		t.Fatalf("write %s: %v", written, err)
	}

	// Listed and lstat'ed, then ls -l, as the benchmark does.
	entries, err := os.ReadDir(d.path(dir))
	if err != nil {
		t.Fatalf("readdir %s: %v", dir, err)
	}
	if len(entries) != n {
		t.Fatalf("readdir %s: %d entries, want %d", dir, len(entries), n)
	}
	for _, e := range entries {
		var st unix.Stat_t
		if err := unix.Lstat(d.path(dir, e.Name()), &st); err != nil {
			t.Fatalf("lstat %s/%s: %v", dir, e.Name(), err)
		}
	}
	out := mustRun(t, d.mnt, "ls", "-l", dir)
	if got := strings.Count(out, "\n-rw-r--r-- 1 "); got != n {
		t.Fatalf("ls -l %s: %d images of mode 0644, want %d:\n%s", dir, got, n, out)
	}

	// Every node's kernel entry expires a second after its lookup; the
	// daemon then asks the kernel to forget all but the budget's.
	deadline := time.Now().Add(15 * time.Second)
	held, asked := nodesHeld(t, d)
	for held > budget {
		if time.Now().After(deadline) {
			t.Fatalf("the daemon still holds %d image nodes (budget %d) after listing %d images; it asked the kernel to forget %d", held, budget, n, asked)
		}
		time.Sleep(200 * time.Millisecond)
		held, asked = nodesHeld(t, d)
	}
	t.Logf("after listing %d images: %d image nodes held, the kernel asked to forget %d", n, held, asked)
	if asked < n-budget {
		t.Errorf("the daemon asked the kernel to forget %d image nodes, want at least %d", asked, n-budget)
	}

	// At most one node besides the writer's survives: of the early
	// images, at least two were forgotten and are looked up afresh.
	for _, name := range early {
		if got := d.inode(t, dir+"/"+name); got != inodes[name] {
			t.Errorf("stat -c %%i %s/%s after eviction: %s, want %s as before", dir, name, got, inodes[name])
		}
		if got := mustRun(t, d.mnt, "cat", dir+"/"+name); got != string(want) {
			t.Errorf("cat %s/%s after eviction: %d bytes, not the image's %d", dir, name, len(got), len(want))
		}
	}
	if err := w.Close(); err != nil {
		t.Fatalf("close %s (the commit): %v", written, err)
	}
	if got := mustRun(t, d.mnt, "cat", dir+"/app:7"); got != string(replacement) {
		t.Errorf("cat %s/app:7 after its writer closed: %d bytes, not the %d written", dir, len(got), len(replacement))
	}
	if got := mustRun(t, d.mnt, "sha256sum", dir+"/app:7"); !strings.HasPrefix(got, sha256Hex(replacement)) {
		t.Errorf("sha256sum %s/app:7: %s, want %s", dir, got, sha256Hex(replacement))
	}
	out = mustRun(t, d.mnt, "ls", "-l", dir)
	if got := strings.Count(out, "\n-rw-r--r-- 1 "); got != n {
		t.Errorf("ls -l %s after eviction: %d images, want %d", dir, got, n)
	}

	// Forgotten images are renamed and removed as any other.
	waitEvicted := func() {
		deadline := time.Now().Add(15 * time.Second)
		for held, _ := nodesHeld(t, d); held > budget; held, _ = nodesHeld(t, d) {
			if time.Now().After(deadline) {
				t.Fatalf("the daemon still holds %d image nodes (budget %d)", held, budget)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	waitEvicted()
	mustRun(t, d.mnt, "mv", dir+"/app:10", dir+"/renamed")
	mustRun(t, d.mnt, "rm", dir+"/app:11")
	waitEvicted()
	if got := mustRun(t, d.mnt, "cat", dir+"/renamed"); got != string(want) {
		t.Errorf("cat %s/renamed: %d bytes, not the image's %d", dir, len(got), len(want))
	}
	for _, gone := range []string{"app:10", "app:11"} {
		_, err := os.Lstat(d.path(dir, gone))
		assertErrno(t, "lstat "+dir+"/"+gone, err, syscall.ENOENT)
	}
	entries, err = os.ReadDir(d.path(dir))
	if err != nil || len(entries) != n-1 {
		t.Errorf("readdir %s after mv and rm: %d entries (%v), want %d", dir, len(entries), err, n-1)
	}
}

// The directories below images/ count against the node budget as images
// do: a tree of many ref prefixes, listed with ls -lR, leaves at most the
// budget's nodes, and the kernel is asked to forget the directories too;
// a forgotten directory reads as before (its inode number, its refs) and
// takes changes.
func TestNodeBudgetBoundsPrefixDirectories(t *testing.T) {
	t.Parallel()
	const budget = 2
	const n = 150
	d := startNsfs(t, withFlags("--node-budget", strconv.Itoa(budget)))
	d.putImage(t, "default", "p0/sub/app", newImage(112, "amd64", 100))
	for i := 1; i < n; i++ {
		sub := d.path(imagePath("default", fmt.Sprintf("p%d/sub", i)))
		if err := os.MkdirAll(sub, 0o755); err != nil {
			t.Fatalf("mkdir -p %s: %v", sub, err)
		}
		if err := os.Link(d.path(imagePath("default", "p0/sub/app")), filepath.Join(sub, "app")); err != nil {
			t.Fatalf("ln: %v", err)
		}
	}
	d = d.remount(t) // the kernel knows none of the directories
	images := imagePath("default", "")
	early := imagePath("default", "p1/sub")
	ino := d.inode(t, early)
	lsR := func() {
		t.Helper()
		out := mustRun(t, d.mnt, "ls", "-lR", images)
		if got := strings.Count(out, " app\n"); got != n {
			t.Fatalf("ls -lR %s: %d images, want %d:\n%s", images, got, n, out)
		}
	}
	lsR()

	// Each directory's node goes once the kernel forgot the names below it.
	deadline := time.Now().Add(20 * time.Second)
	held, asked := nodesHeld(t, d)
	for held > budget {
		if time.Now().After(deadline) {
			t.Fatalf("the daemon still holds %d nodes below images/ (budget %d) after ls -lR of %d images in %d directories; it asked the kernel to forget %d", held, budget, n, 2*n, asked)
		}
		time.Sleep(200 * time.Millisecond)
		held, asked = nodesHeld(t, d)
	}
	// Some go without being asked (a node a concurrent lookup made in
	// vain); the images alone are n.
	if asked < 2*n {
		t.Errorf("the daemon asked the kernel to forget %d nodes, want at least %d: most of its %d images and %d directories", asked, 2*n, n, 2*n)
	}

	if got := d.inode(t, early); got != ino {
		t.Errorf("stat -c %%i %s after eviction: %s, want %s as before", early, got, ino)
	}
	lsR()
	mustRun(t, d.mnt, "rm", imagePath("default", "p5/sub/app"))
	mustRun(t, d.mnt, "rmdir", imagePath("default", "p5/sub"), imagePath("default", "p5"))
	_, err := os.Lstat(d.path(imagePath("default", "p5")))
	assertErrno(t, "lstat "+imagePath("default", "p5")+" after rmdir", err, syscall.ENOENT)
	if out := mustRun(t, d.mnt, "ls", imagePath("default", "p6/sub")); out != "app\n" {
		t.Errorf("ls %s after eviction: %q, want app", imagePath("default", "p6/sub"), out)
	}
}
