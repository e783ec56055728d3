package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// linkImages makes n refs lib/app:0 … lib/app:<n-1> of one image in
// namespace default, and returns the images/lib directory's path below
// the mount.
func linkImages(t *testing.T, d *daemon, n int) string {
	t.Helper()
	d.putImage(t, "default", "lib/app:0", newImage(112, "amd64", 100))
	for i := 1; i < n; i++ {
		if err := os.Link(d.path(imagePath("default", "lib/app:0")), d.path(imagePath("default", fmt.Sprintf("lib/app:%d", i)))); err != nil {
			t.Fatalf("ln: %v", err)
		}
	}
	return imagePath("default", "lib")
}

// readNames reads directory fd to its end with getdents into buf and
// returns names with the names read appended ("." and ".." left out).
func readNames(t *testing.T, fd int, buf []byte, names []string) []string {
	t.Helper()
	for {
		nb, err := unix.Getdents(fd, buf)
		if err != nil {
			t.Fatalf("getdents after %d names: %v", len(names), err)
		}
		if nb == 0 {
			return names
		}
		_, _, names = unix.ParseDirent(buf[:nb], -1, names)
	}
}

// ls -l of a big directory costs a few requests per batch of entries, not
// one per entry: the stats come with the listing (READDIRPLUS, answered
// from the listing's snapshot), and ls stops probing xattrs after the
// first EOPNOTSUPP.
func TestLsLStatsComeWithTheListing(t *testing.T) {
	t.Parallel()
	d := startNsfs(t, withFlags("--debug"))
	const n = 300
	dir := linkImages(t, d, n)
	// A new mount: the kernel has none of the entries the links left.
	d = d.remount(t)

	var out string
	ops := fuseRequests(t, d, func() { out = mustRun(t, d.mnt, "ls", "-l", dir) })
	if got := strings.Count(out, "app:"); got != n {
		t.Fatalf("ls -l listed %d images, want %d:\n%s", got, n, out)
	}
	count := func(prefix string) int {
		c := 0
		for _, op := range ops {
			if strings.HasPrefix(op, prefix) && (prefix != "LOOKUP" || strings.Contains(op, `"app:`)) {
				c++
			}
		}
		return c
	}
	if c := count("READDIRPLUS"); c == 0 {
		t.Errorf("ls -l sent no READDIRPLUS: %v", ops)
	}
	if c := count("GETXATTR"); c > 4 {
		t.Errorf("ls -l of %d images sent %d GETXATTR requests (it stops asking after EOPNOTSUPP): %v", n, c, ops)
	}
	if c := count("LOOKUP"); c > n/10 {
		t.Errorf("ls -l of %d images sent %d per-entry LOOKUPs: %v", n, c, ops)
	}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n")[1:] {
		if !strings.HasPrefix(line, "-rw-r--r-- 1 ") {
			t.Errorf("ls -l line %q, want an image of mode 0644", line)
		}
	}
}

// A listing answers READDIRPLUS from its snapshot only while the store
// is unchanged: an image removed while a listing is half read is not
// handed to the kernel by the batches that follow (stat then finds it),
// and one replaced meanwhile shows its new size.
func TestListingInProgressNeverRevivesARemovedImage(t *testing.T) {
	t.Parallel()
	d := startNsfs(t, withFlags("--debug"))
	const n = 300
	dir := linkImages(t, d, n)
	other := newImage(116, "amd64", 200)
	d.putImage(t, "default", "other", other)
	d = d.remount(t) // the kernel knows none of the entries

	fd, err := unix.Open(d.path(dir), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	// The first batch (READDIRPLUS) takes the snapshot; a stat of one of
	// its entries makes the kernel ask READDIRPLUS for the next batch too.
	buf := make([]byte, 2048)
	nb, err := unix.Getdents(fd, buf)
	if err != nil || nb == 0 {
		t.Fatalf("getdents: %d, %v", nb, err)
	}
	_, _, first := unix.ParseDirent(buf[:nb], -1, nil)
	var st unix.Stat_t
	if err := unix.Lstat(d.path(dir, first[len(first)-1]), &st); err != nil {
		t.Fatalf("lstat of a listed entry: %v", err)
	}
	// The two names the next batch begins with (the store lists in byte
	// order, as sort.Strings sorts).
	var all []string
	for i := 0; i < n; i++ {
		all = append(all, fmt.Sprintf("app:%d", i))
	}
	sort.Strings(all)
	next := sort.SearchStrings(all, first[len(first)-1]) + 1
	if next+1 >= len(all) {
		t.Fatalf("the first batch listed %s, nearly everything", first[len(first)-1])
	}
	removed, replaced := all[next], all[next+1]
	mustRun(t, d.mnt, "rm", filepath.Join(dir, removed))
	mustRun(t, d.mnt, "cp", imagePath("default", "other"), filepath.Join(dir, replaced))

	names := readNames(t, fd, buf, first)
	if len(names) < n-1 {
		t.Fatalf("the listing had %d names, want at least %d", len(names), n-1)
	}
	assertMissing(t, d, filepath.Join(dir, removed))
	assertSize(t, d, filepath.Join(dir, replaced), len(other.manifest.data))
}

// The last listing read is shared by the next opens of its directory only
// while the store is unchanged: a listing after a create, a removal or a
// rename shows it.
func TestRepeatedListingsShowEveryChange(t *testing.T) {
	t.Parallel()
	d := startNsfs(t)
	m := d.mnt
	dir := linkImages(t, d, 50)
	list := func() string { return mustRun(t, m, "ls", dir) }
	has := func(out, name string) bool {
		for _, line := range strings.Split(out, "\n") {
			if line == name {
				return true
			}
		}
		return false
	}
	first := list()
	if !has(first, "app:7") || has(first, "new") {
		t.Fatalf("ls %s:\n%s", dir, first)
	}
	if again := list(); again != first {
		t.Errorf("a second listing of an unchanged directory differs:\n%s\nwas:\n%s", again, first)
	}
	mustRun(t, m, "ln", filepath.Join(dir, "app:0"), filepath.Join(dir, "new"))
	if out := list(); !has(out, "new") {
		t.Errorf("after ln, ls does not show new:\n%s", out)
	}
	mustRun(t, m, "rm", filepath.Join(dir, "app:7"))
	if out := list(); has(out, "app:7") {
		t.Errorf("after rm, ls still shows app:7:\n%s", out)
	}
	mustRun(t, m, "mv", filepath.Join(dir, "new"), filepath.Join(dir, "renamed"))
	if out := list(); has(out, "new") || !has(out, "renamed") {
		t.Errorf("after mv new renamed, ls shows:\n%s", out)
	}
	// Another directory's listing in between, then this one again.
	mustRun(t, m, "ls", imagePath("default", ""))
	if out := list(); strings.Count(out, "\n") != 50 {
		t.Errorf("ls lists %d names, want 50:\n%s", strings.Count(out, "\n"), out)
	}
}
