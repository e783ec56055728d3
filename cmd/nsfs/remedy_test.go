package main

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/nsfs/nsfs/client"
)

// TestDaemonGoneRemedy: an error that says a mount's daemon died is
// printed with the command that brings it back, wherever it sits in the
// chain; other errors get nothing.
func TestDaemonGoneRemedy(t *testing.T) {
	// /nonexistent-mnt is in no mount table: the remedy names no --root.
	// (Which errors mean a dead daemon is client.DaemonGone's, tested there.)
	const dir = "/nonexistent-mnt"
	gone := client.DaemonGone(&fs.PathError{Op: "stat", Path: dir + "/ns", Err: syscall.ENOTCONN}, dir)
	want := "the nsfs daemon serving /nonexistent-mnt is gone (transport endpoint is not connected): run `nsfs mount /nonexistent-mnt` again to recover"
	if printed := gone.Error() + remedy(gone); printed != want {
		t.Errorf("DaemonGone prints %s, want %s", printed, want)
	}
	wrapped := fmt.Errorf("pull: %w", gone)
	if printed := wrapped.Error() + remedy(wrapped); printed != "pull: "+want {
		t.Errorf("DaemonGone wrapped prints %s, want the remedy once, at the end", printed)
	}
	if got := remedy(&fs.PathError{Op: "open", Path: dir + "/ns/x", Err: syscall.ENOENT}); got != "" {
		t.Errorf("remedy of ENOENT = %q, want none", got)
	}
}

// TestStoreRootOf: the remedy names the store root only of an nsfs mount
// with an absolute source, the one on top.
func TestStoreRootOf(t *testing.T) {
	table := filepath.Join(t.TempDir(), "mountinfo")
	if err := os.WriteFile(table, []byte(`36 22 0:40 / /mnt rw,nosuid - tmpfs tmpfs rw
37 36 0:41 / /mnt rw,nosuid,nodev - fuse.nsfs /var/lib/nsfs rw,user_id=0
38 22 0:42 / /srv/my\040store rw - fuse.nsfs /data/my\040root rw
39 22 0:43 / /rel rw - fuse.nsfs relative rw
40 22 0:44 / /tmpfs rw - tmpfs /abs rw
`), 0o644); err != nil {
		t.Fatal(err)
	}
	for dir, want := range map[string]string{"/mnt": "/var/lib/nsfs", "/srv/my store": "/data/my root", "/rel": "", "/tmpfs": "", "/none": ""} {
		if got := storeRootOf(table, dir); got != want {
			t.Errorf("storeRootOf(%q) = %q, want %q", dir, got, want)
		}
	}
	if got := storeRootOf(table+".missing", "/mnt"); got != "" {
		t.Errorf("storeRootOf of a missing table = %q, want none", got)
	}
}
