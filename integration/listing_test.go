package integration

import (
	"fmt"
	"os"
	"strings"
	"testing"
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

// ls -l of a big directory costs a few requests per batch of entries, not
// one per entry: the stats come with the listing (READDIRPLUS, answered
// from the listing's snapshot), and ls stops probing xattrs after the
// first EOPNOTSUPP. A names-only ls stays a plain READDIR after the first
// batch (READDIRPLUS_AUTO).
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
