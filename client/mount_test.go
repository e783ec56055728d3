package client

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// testMountinfo has three nsfs mounts: one on top of a tmpfs, one with
// escaped spaces, one whose line has no source; and a line cut short.
const testMountinfo = `22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
36 22 0:40 / /mnt rw,nosuid - tmpfs tmpfs rw
37 36 0:41 / /mnt rw,nosuid,nodev - fuse.nsfs /var/lib/nsfs rw,user_id=0
38 22 0:42 / /srv/my\040store rw - fuse.nsfs /data/my\040root rw
39 22 0:43 / /broken rw - fuse.nsfs
40 22 0:44 / /short rw
`

func writeMountinfo(t *testing.T) string {
	t.Helper()
	mountinfo := filepath.Join(t.TempDir(), "mountinfo")
	if err := os.WriteFile(mountinfo, []byte(testMountinfo), 0o644); err != nil {
		t.Fatal(err)
	}
	return mountinfo
}

func TestMountAt(t *testing.T) {
	mountinfo := writeMountinfo(t)
	for _, tc := range []struct{ dir, fstype, source string }{
		{"/mnt", FSType, "/var/lib/nsfs"}, // the later line is mounted on top
		{"/srv/my store", FSType, "/data/my root"},
		{"/broken", FSType, ""},
		{"/", "ext4", "/dev/sda1"},
		{"/mnt/ns", "", ""},
		{"/short", "", ""}, // a line without "-" and a type is no mount
	} {
		fstype, source, err := mountAt(mountinfo, tc.dir)
		if err != nil || fstype != tc.fstype || source != tc.source {
			t.Errorf("mountAt(%q) = %q, %q, %v; want %q, %q", tc.dir, fstype, source, err, tc.fstype, tc.source)
		}
	}
}

func TestNsfsMounts(t *testing.T) {
	mounts, err := nsfsMounts(writeMountinfo(t))
	if want := "[/mnt /srv/my store /broken]"; err != nil || fmt.Sprint(mounts) != want {
		t.Errorf("nsfsMounts = %q, %v; want %s", mounts, err, want)
	}
	if _, err := nsfsMounts(filepath.Join(t.TempDir(), "missing")); err == nil || !strings.HasPrefix(err.Error(), "looking for nsfs mounts: ") {
		t.Errorf("nsfsMounts of a missing file: %v, want an error looking for nsfs mounts", err)
	}
}

func TestEnclosingMount(t *testing.T) {
	mounts := []string{"/mnt", "/mnt/inner", "/srv"}
	for path, want := range map[string]string{
		"/mnt/ns":           "/mnt",
		"/mnt/inner/ns/foo": "/mnt/inner",
		"/mnt":              "",
		"/mnt2/ns":          "",
		"/tmp":              "",
	} {
		if got := enclosingMount(mounts, path); got != want {
			t.Errorf("enclosingMount(%q) = %q, want %q", path, got, want)
		}
	}
}

func TestHoldingMount(t *testing.T) {
	mounts := []string{"/mnt", "/mnt/inner", "/srv"}
	for path, want := range map[string]string{
		"/mnt":              "/mnt",
		"/mnt/ns/default":   "/mnt",
		"/mnt/inner":        "/mnt/inner",
		"/mnt/inner/ns/foo": "/mnt/inner",
		"/mnt2/ns":          "",
		"/":                 "",
	} {
		if got := holdingMount(mounts, path); got != want {
			t.Errorf("holdingMount(%q) = %q, want %q", path, got, want)
		}
	}
}

// EACCES from a mount made without allow_other names its user and the
// flag; with allow_other, or without options, it stays the plain error.
func TestNotAllowed(t *testing.T) {
	table := filepath.Join(t.TempDir(), "mountinfo")
	if err := os.WriteFile(table, []byte(`22 1 8:1 / / rw - ext4 /dev/sda1 rw
37 22 0:41 / /mnt rw - fuse.nsfs /var/lib/nsfs rw,user_id=0,group_id=0
38 22 0:42 / /other rw - fuse.nsfs /s rw,user_id=0,group_id=0,allow_other
39 22 0:43 / /bare rw - fuse.nsfs /s
`), 0o644); err != nil {
		t.Fatal(err)
	}
	for dir, want := range map[string]string{
		"/mnt":   "nsfs mount /mnt: permission denied: root (uid 0) mounted it without --allow-other, so only that user may use it; to let other users in, mount it with --allow-other (nsfs mount --allow-other /mnt, or make run ARGS=--allow-other)",
		"/other": "nsfs mount /other: stat /other: permission denied",
		"/bare":  "nsfs mount /bare: stat /bare: permission denied",
		"/gone":  "nsfs mount /gone: stat /gone: permission denied",
	} {
		err := notAllowed(table, dir, syscall.EACCES)
		if err == nil || err.Error() != want {
			t.Errorf("notAllowed(%s) = %v\nwant %s", dir, err, want)
		}
	}
}
