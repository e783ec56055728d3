package integration

import (
	"strings"
	"testing"
)

// TestRefusalsAreLogged: the refusals a user debugging a failed command
// needs explained are logged by the daemon, one line naming the object
// and the reason (s14, finding 9): an image file left empty (touch, `: >`,
// whose EINVAL at close the shell may not even report), and the EPERM of
// an entry a directory does not take (mv of a namespace, a symlink, a
// directory in blobs/sha256). The routine answers are not: ENOENT of a
// lookup, and the empty close a shell's redirection makes before its
// command writes.
func TestRefusalsAreLogged(t *testing.T) {
	t.Parallel()
	d := startNsfs(t)
	mustRun(t, d.mnt, "mkdir", "ns/foo")
	img := newImage(91, "amd64", 100)
	for _, b := range append([]blob{img.config}, img.layers...) {
		d.putBlob(t, "foo", b)
	}
	// A redirection that writes an image: the shell's close before cat
	// writes commits nothing, and is no refusal.
	src := writeTemp(t, "manifest.json", img.manifest.data)
	mustSh(t, d.mnt, "cat "+src+" > ns/foo/images/ok:1")
	mustFail(t, d.mnt, "No such file or directory", "stat", "ns/foo/images/nothere")
	before := d.state(t)
	logsBefore := d.logs.String()

	mustFail(t, d.mnt, "Invalid argument", "touch", "ns/foo/images/empty:3")
	if r := sh(t, d.mnt, ": > ns/foo/images/empty:2"); r.code != 0 {
		t.Errorf("the shell reports a close's error after all: %s", r)
	}
	mustFail(t, d.mnt, "Operation not permitted", "mv", "ns/foo", "ns/foo5")
	mustFail(t, d.mnt, "Operation not permitted", "ln", "-s", "x", "ns/foo/images/s:1")
	mustFail(t, d.mnt, "Operation not permitted", "mkdir", "ns/foo/blobs/sha256/d")
	d.assertUnchanged(t, "the refused operations", before)

	want := []string{
		`nsfs: close "ns/foo/images/empty:3": the file was left empty, and an empty file is no manifest: nothing was stored (EINVAL)`,
		`nsfs: close "ns/foo/images/empty:2": the file was left empty, and an empty file is no manifest: nothing was stored (EINVAL)`,
		`nsfs: rename "foo" to "foo5" above the namespaces: not permitted: this directory takes no such entry (EPERM)`,
		`nsfs: symlink "s:1" in namespace "foo": not permitted: this directory takes no such entry (EPERM)`,
		`nsfs: mkdir "d" in namespace "foo": not permitted: this directory takes no such entry (EPERM)`,
	}
	for _, line := range want {
		d.waitForLog(t, line+"\n")
	}
	for _, line := range want {
		if n := strings.Count(d.logs.String(), line+"\n"); n != 1 {
			t.Errorf("the daemon logged %q %d times, want once:\n%s", line, n, d.logs)
		}
	}
	if strings.Contains(logsBefore, "ok:1") || strings.Contains(logsBefore, "nothere") {
		t.Errorf("the daemon logged a routine answer:\n%s", logsBefore)
	}
}
