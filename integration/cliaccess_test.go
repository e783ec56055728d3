package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// A user the mount does not let in (made by root without --allow-other)
// gets a message that says why and names the flag; with --allow-other
// the same command works.
func TestCLIPermissionDeniedNamesAllowOther(t *testing.T) {
	t.Parallel()
	requireMount(t)
	const nobody = "65534"
	// Mountpoints another user can reach (the test's own temporary
	// directories are 0700).
	base, err := os.MkdirTemp("", "nsfs-access-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	mount := func(name string, flags ...string) *daemon {
		mnt := filepath.Join(base, name)
		if err := os.Mkdir(mnt, 0o755); err != nil {
			t.Fatal(err)
		}
		return startNsfs(t, withStore(filepath.Join(base, name+"-root"), mnt), withFlags(flags...))
	}
	private := mount("private")
	shared := mount("shared", "--allow-other")
	asNobody := func(mnt string, args ...string) result {
		return runCLIWith(t, nil, "setpriv", append([]string{"--reuid", nobody, "--regid", nobody, "--clear-groups", nsfsBin, "--mount", mnt}, args...)...)
	}

	r := asNobody(private.mnt, "namespaces", "ls", "-q")
	assertCLIFailure(t, r, fmt.Sprintf("nsfs: nsfs mount %[1]s: permission denied: root (uid 0) mounted it without --allow-other, so only that user may use it; "+
		"to let other users in, mount it with --allow-other (nsfs mount --allow-other %[1]s, or make run ARGS=--allow-other)\n", private.mnt))
	// The kernel's own answer, for comparison: a bare EACCES.
	r = runCLIWith(t, nil, "setpriv", "--reuid", nobody, "--regid", nobody, "--clear-groups", "ls", private.mnt)
	if r.code == 0 {
		t.Errorf("ls of a mount without --allow-other as another user: %s", r)
	}

	r = asNobody(shared.mnt, "namespaces", "ls", "-q")
	if r.code != 0 || r.stdout != lines("default") || r.stderr != "" {
		t.Errorf("namespaces ls as another user on a mount with --allow-other: want default, got %s", r)
	}
	// And root, who made both, is let in to the first.
	if r := runCLI(t, nil, "--mount", private.mnt, "namespaces", "ls", "-q"); r.code != 0 || r.stdout != lines("default") {
		t.Errorf("namespaces ls as the mount's user: %s", r)
	}
}
