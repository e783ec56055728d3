package integration

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// A write of index.json that drops a ref is seen at once by a stat of the
// ref's name, also while other processes list the directory: a listing
// batch read from the snapshot before the write may make the dropped
// name's node after the write looked for the names the kernel holds (the
// name had no node: the node budget had the kernel forget it, or the
// listing is the first), and the kernel must still not keep that entry.
func TestIndexWriteDropsNameDuringListings(t *testing.T) {
	t.Parallel()
	const n = 800
	d := startNsfs(t, withFlags("--node-budget", "50"))
	dir := linkImages(t, d, n)
	d = d.remount(t) // the kernel knows none of the entries

	indexPath := d.path("ns", "default", "index.json")
	data, err := os.ReadFile(indexPath)
	if err != nil {
		t.Fatal(err)
	}
	var idx map[string]any
	if err := json.Unmarshal(data, &idx); err != nil {
		t.Fatalf("index.json: %v", err)
	}
	manifests := idx["manifests"].([]any)

	// Listers: each lists the directory again and again, so that fresh
	// listings (READDIRPLUS, making nodes) run across every write.
	var stop atomic.Bool
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				// A listing across a write may fail (EINVAL: the
				// kernel asks a new snapshot for an offset of the
				// old one); that is not what this test checks.
				os.ReadDir(d.path(dir))
			}
		}()
	}
	defer func() { stop.Store(true); wg.Wait() }()

	// Each write drops a run of names that follow each other in the
	// listing, so that a batch in flight across the write likely holds
	// some of them.
	var names []string
	for i := 0; i < n; i++ {
		names = append(names, "lib/app:"+strconv.Itoa(i))
	}
	sort.Strings(names)
	const run = 40
	deadline := time.Now().Add(15 * time.Second)
	for k := 0; (k+1)*run < n && time.Now().Before(deadline); k++ {
		drop := map[any]bool{}
		for _, name := range names[k*run : (k+1)*run] {
			drop[name] = true
		}
		var kept []any
		for _, m := range manifests {
			if !drop[m.(map[string]any)["annotations"].(map[string]any)["org.opencontainers.image.ref.name"]] {
				kept = append(kept, m)
			}
		}
		manifests = kept
		idx["manifests"] = kept
		if err := os.WriteFile(indexPath, mustJSON(idx), 0o644); err != nil {
			t.Fatalf("write index.json dropping %s...: %v", names[k*run], err)
		}
		for _, name := range names[k*run : (k+1)*run] {
			_, err := os.Lstat(d.path(imagePath("default", name)))
			assertErrno(t, fmt.Sprintf("lstat %s right after the write of index.json that dropped it (write %d)", name, k), err, syscall.ENOENT)
		}
		if t.Failed() {
			return
		}
	}
}
