package client

import (
	"os"
	"path/filepath"
	"testing"
)

func TestMountAt(t *testing.T) {
	mountinfo := filepath.Join(t.TempDir(), "mountinfo")
	table := `22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
36 22 0:40 / /mnt rw,nosuid - tmpfs tmpfs rw
37 36 0:41 / /mnt rw,nosuid,nodev - fuse.nsfs /var/lib/nsfs rw,user_id=0
38 22 0:42 / /srv/my\040store rw - fuse.nsfs /data/my\040root rw
39 22 0:43 / /broken rw - fuse.nsfs
`
	if err := os.WriteFile(mountinfo, []byte(table), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ dir, fstype, source string }{
		{"/mnt", FSType, "/var/lib/nsfs"}, // the later line is mounted on top
		{"/srv/my store", FSType, "/data/my root"},
		{"/broken", FSType, ""},
		{"/", "ext4", "/dev/sda1"},
		{"/mnt/ns", "", ""},
	} {
		fstype, source, err := mountAt(mountinfo, tc.dir)
		if err != nil || fstype != tc.fstype || source != tc.source {
			t.Errorf("mountAt(%q) = %q, %q, %v; want %q, %q", tc.dir, fstype, source, err, tc.fstype, tc.source)
		}
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
