package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// nsfs gc --compact refuses a mounted store and changes nothing; on the
// unmounted store it rewrites meta.db without the space of what was
// deleted, says the sizes, and the store mounts as it was.
func TestGCCompact(t *testing.T) {
	d := startNsfs(t)
	if r := sh(t, d.mnt, `for i in $(seq 1 300); do mkdir ns/n$i && setfattr -n user.team -v infra ns/n$i || exit 1; done
for i in $(seq 2 300); do rmdir ns/n$i || exit 1; done`); r.code != 0 {
		t.Fatalf("namespaces made and removed: %+v", r)
	}
	d.putImage(t, "n1", "app:v1", newImage(46, "amd64", 100))
	before := d.state(t)
	meta := filepath.Join(d.root, "meta.db")
	r := mustFail(t, "/", "store "+d.root+" is already in use by another nsfs", nsfsBin, "gc", "--root", d.root, "--compact")
	if !strings.Contains(r.stderr, "unmount it first") || r.stdout != "" {
		t.Errorf("gc --compact of a mounted store: %+v, want only the refusal", r)
	}
	if exists(meta + ".compact") {
		t.Error("gc --compact of a mounted store made meta.db.compact")
	}
	d.assertUnchanged(t, "gc --compact of the mounted store", before)
	d.stop(t)

	fi, err := os.Stat(meta)
	if err != nil {
		t.Fatal(err)
	}
	out := mustRun(t, "/", nsfsBin, "gc", "--root", d.root, "--compact")
	var was, now int64
	want := fmt.Sprintf("no garbage in %s\ncompacted %s: %%d bytes before, %%d after\n", d.root, meta)
	if n, err := fmt.Sscanf(out, want, &was, &now); n != 2 || err != nil {
		t.Fatalf("nsfs gc --compact said %q, want %q", out, want)
	}
	after, err := os.Stat(meta)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("gc --compact: meta.db %d bytes before, %d after", was, now)
	if was != fi.Size() || now != after.Size() || now >= was {
		t.Errorf("gc --compact: %d bytes before, %d after; meta.db was %d bytes, is %d", was, now, fi.Size(), after.Size())
	}
	if exists(meta + ".compact") {
		t.Error("meta.db.compact left behind")
	}
	mustFsckClean(t, d.root)
	d = startNsfs(t, withStore(d.root, d.mnt))
	d.assertUnchanged(t, "the compacted store", before)
}
