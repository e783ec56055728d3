package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// When fusermount fails (here: a user who may not mount on a root-owned
// directory), nsfs mount says its exit status, not the raw wait status
// ("fusermount exited with code 256").
func TestMountSaysFusermountsExitStatus(t *testing.T) {
	t.Parallel()
	requireMount(t)
	const nobody = 65534
	base, err := os.MkdirTemp("", "nsfs-fusermount-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	root, mnt := filepath.Join(base, "root"), filepath.Join(base, "mnt")
	for _, dir := range []string{root, mnt} {
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(root, nobody, nobody); err != nil { // the store is the user's; the mountpoint is root's
		t.Fatal(err)
	}
	suiteReaper.mount(mnt)
	r := runCLIWith(t, nil, "setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups", nsfsBin, "mount", "--root", root, mnt)
	if r.code != 1 || !strings.Contains(r.stderr, "nsfs: mount "+root+" at "+mnt+": fusermount exited with status 1 (its message, if any, is above)\n") ||
		strings.Contains(r.stderr, "code 256") {
		t.Errorf("nsfs mount where fusermount fails: want exit 1 and fusermount's exit status, got %s", r)
	}
	if n := mountedAt(t, mnt); n != 0 {
		t.Errorf("%d mounts at %s after the failed mount", n, mnt)
	}
}
