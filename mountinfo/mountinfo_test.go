package mountinfo

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// table has two mounts at /mnt (the later on top), escaped spaces, a line
// with no source and a line cut short.
const table = `22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
36 22 0:40 / /mnt rw,nosuid - tmpfs tmpfs rw
37 36 0:41 / /mnt rw,nosuid,nodev - fuse.nsfs /var/lib/nsfs rw,user_id=0
38 22 0:42 / /srv/my\040store\011x\134y rw master:3 - fuse.nsfs /data/my\040root rw
39 22 0:43 / /broken rw - fuse.nsfs
40 22 0:44 / /short rw
`

func TestParse(t *testing.T) {
	entries, err := Parse(strings.NewReader(table))
	if err != nil {
		t.Fatal(err)
	}
	want := []Entry{
		{Device: "8:1", Mountpoint: "/", FSType: "ext4", Source: "/dev/sda1", Options: "rw"},
		{Device: "0:40", Mountpoint: "/mnt", FSType: "tmpfs", Source: "tmpfs", Options: "rw"},
		{Device: "0:41", Mountpoint: "/mnt", FSType: "fuse.nsfs", Source: "/var/lib/nsfs", Options: "rw,user_id=0"},
		{Device: "0:42", Mountpoint: "/srv/my store\tx\\y", FSType: "fuse.nsfs", Source: "/data/my root", Options: "rw"},
		{Device: "0:43", Mountpoint: "/broken", FSType: "fuse.nsfs"},
	}
	if !reflect.DeepEqual(entries, want) {
		t.Errorf("Parse =\n%+v\nwant\n%+v", entries, want)
	}
	for dir, want := range map[string]string{"/mnt": "fuse.nsfs", "/": "ext4", "/mnt/ns": "", "/short": ""} {
		e, ok := At(entries, dir)
		if e.FSType != want || ok != (want != "") {
			t.Errorf("At(%q) = %+v, %v; want type %q", dir, e, ok, want)
		}
	}
}

func TestUnescape(t *testing.T) {
	for in, want := range map[string]string{
		`plain`: "plain", `a\040b`: "a b", `\134`: `\`, `a\0`: `a\0`, `\400`: `\400`, `\12x`: `\12x`, `end\`: `end\`,
	} {
		if got := unescape(in); got != want {
			t.Errorf("unescape(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestRead(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mountinfo")
	if err := os.WriteFile(path, []byte(table), 0o644); err != nil {
		t.Fatal(err)
	}
	if entries, err := Read(path); err != nil || len(entries) != 5 {
		t.Errorf("Read = %d entries, %v; want 5", len(entries), err)
	}
	if _, err := Read(path + ".missing"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Read of a missing file: %v, want ErrNotExist", err)
	}
	// The process's own table has its root.
	entries, err := Read(Self)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := At(entries, "/"); !ok {
		t.Errorf("%s has no mount at /: %+v", Self, entries)
	}
}
