package integration

import (
	"encoding/json"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// listingRequests counts the requests that read a listing (READDIR and
// READDIRPLUS) and the LOOKUPs of names containing "app:" among ops.
func listingRequests(ops []string) (reads, lookups int) {
	for _, op := range ops {
		switch {
		case strings.HasPrefix(op, "READDIR"):
			reads++
		case strings.HasPrefix(op, "LOOKUP") && strings.Contains(op, `"app:`):
			lookups++
		}
	}
	return reads, lookups
}

// keptListing lists dir twice with ls and returns once the second
// listing was served from the kernel's cache (no READDIR request): the
// kernel keeps an unchanged images/ directory's listing for a little
// under a second after the daemon answered it.
func keptListing(t *testing.T, d *daemon, dir string) string {
	t.Helper()
	for attempt := 0; attempt < 5; attempt++ {
		start := time.Now()
		mustRun(t, d.mnt, "ls", dir)
		var out string
		ops := fuseRequests(t, d, func() { out = mustRun(t, d.mnt, "ls", dir) })
		if reads, _ := listingRequests(ops); reads == 0 {
			return out
		}
		if time.Since(start) < 300*time.Millisecond {
			t.Fatalf("ls %s right after ls of the unchanged directory read it again: %v", dir, ops)
		}
		// Too slow a machine to see the cache: try again.
	}
	t.Fatalf("ls %s was never served from the kernel's cache", dir)
	return ""
}

// rewriteIndex writes namespace default's index.json with every ref it
// has but drop, plus add (of lib/app:0's target) unless add is "".
func rewriteIndex(t *testing.T, d *daemon, drop, add string) {
	t.Helper()
	data, err := os.ReadFile(d.path("ns", "default", "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	var idx map[string]any
	if err := json.Unmarshal(data, &idx); err != nil {
		t.Fatalf("index.json: %v", err)
	}
	var kept []any
	for _, m := range idx["manifests"].([]any) {
		entry := m.(map[string]any)
		if entry["annotations"].(map[string]any)["org.opencontainers.image.ref.name"] != drop {
			kept = append(kept, m)
		}
		if entry["annotations"].(map[string]any)["org.opencontainers.image.ref.name"] == "lib/app:0" && add != "" {
			added := map[string]any{}
			for k, v := range entry {
				added[k] = v
			}
			added["annotations"] = map[string]any{"org.opencontainers.image.ref.name": add}
			kept = append(kept, added)
		}
	}
	idx["manifests"] = kept
	if err := os.WriteFile(d.path("ns", "default", "index.json"), mustJSON(idx), 0o644); err != nil {
		t.Fatalf("write index.json: %v", err)
	}
}

// A write of index.json changes images/ without a request on that
// directory: a listing the kernel keeps must not survive it. The kernel
// drops its cached listing itself when told that a name it holds went
// (the daemon notifies it), but a name it never saw comes without any:
// only the daemon can know the listing changed.
func TestListingAfterIndexWriteShowsItAtOnce(t *testing.T) {
	t.Parallel()
	d := startNsfs(t, withFlags("--debug"))
	dir := linkImages(t, d, 50)
	if out := keptListing(t, d, dir); !strings.Contains(out, "app:7\n") || strings.Contains(out, "new") {
		t.Fatalf("ls %s:\n%s", dir, out)
	}
	rewriteIndex(t, d, "", "lib/new")
	if out := mustRun(t, d.mnt, "ls", dir); !strings.Contains(out, "new\n") || strings.Count(out, "\n") != 51 {
		t.Errorf("ls %s right after the write of index.json that added new:\n%s", dir, out)
	}

	if out := keptListing(t, d, dir); !strings.Contains(out, "app:7\n") {
		t.Fatalf("ls %s:\n%s", dir, out)
	}
	rewriteIndex(t, d, "lib/app:7", "")
	if out := mustRun(t, d.mnt, "ls", dir); strings.Contains(out, "app:7\n") || strings.Count(out, "\n") != 50 {
		t.Errorf("ls %s right after the write of index.json that removed app:7:\n%s", dir, out)
	}
}

// A program that lists a directory, then lstats every name (as the
// benchmark's Go loop does) sends no LOOKUP per name, also once the
// kernel's entries of an earlier listing expired: the listing is then
// read again with READDIRPLUS instead of being served from the kernel's
// cache, so every batch brings its entries' attributes.
func TestListThenLstatAfterEntriesExpired(t *testing.T) {
	t.Parallel()
	d := startNsfs(t, withFlags("--debug"))
	const n = 300
	dir := linkImages(t, d, n)
	d = d.remount(t) // the kernel knows none of the entries
	mustRun(t, d.mnt, "ls", dir)
	listed := time.Now()
	// Past the kernel's entry timeout (1 s): there is nothing to poll.
	for time.Since(listed) < 1200*time.Millisecond {
		time.Sleep(20 * time.Millisecond)
	}

	var names []string
	ops := fuseRequests(t, d, func() {
		fd, err := unix.Open(d.path(dir), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer unix.Close(fd)
		names = readNames(t, fd, make([]byte, 32<<10), nil)
		var st unix.Stat_t
		for _, name := range names {
			if err := unix.Lstat(d.path(dir, name), &st); err != nil {
				t.Errorf("lstat %s: %v", name, err)
			} else if st.Mode&unix.S_IFMT != unix.S_IFREG {
				t.Errorf("lstat %s: mode %o, want a regular file", name, st.Mode)
			}
		}
	})
	sort.Strings(names)
	if len(names) != n || names[0] != "app:0" || names[n-1] != "app:99" {
		t.Fatalf("the listing had %d names (%v…), want app:0 … app:%d", len(names), names[:min(3, len(names))], n-1)
	}
	reads, lookups := listingRequests(ops)
	if reads == 0 {
		t.Errorf("a listing after the entries expired was served from the kernel's cache: %v", ops)
	}
	if lookups > n/10 {
		t.Errorf("lstat of %d listed names sent %d LOOKUPs: %v", n, lookups, ops)
	}
}
