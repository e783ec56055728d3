package layerindex

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
)

func TestCleanName(t *testing.T) {
	for _, c := range []struct{ name, want, why string }{
		{"etc/os-release", "etc/os-release", ""},
		{"etc/", "etc", ""},
		{"./etc//x/./y", "etc/x/y", ""},
		{"./", "", ""},
		{".", "", ""},
		{"/", "", ""},
		{"///", "", ""},
		{"/etc/x", "etc/x", ""},
		{"//etc/x/", "etc/x", ""},
		{"x/../inner", "inner", ""},
		{"a/b/../../c", "c", ""},
		{"x/..", "", ""},
		{"..", "", "climbs out"},
		{"../../etc/evil", "", "climbs out"},
		{"/../etc/evil", "", "climbs out"},
		{"a/../../evil", "", "climbs out"},
		{"a/..b/c..", "a/..b/c..", ""},
	} {
		got, why := cleanName(c.name)
		if got != c.want || (why == "") != (c.why == "") || !strings.Contains(why, c.why) {
			t.Errorf("cleanName(%q) = %q, %q; want %q, %q", c.name, got, why, c.want, c.why)
		}
	}
}

type headerEntry struct {
	name, link string
	kind       byte
	mode       int64
	uid        int
}

func tarOf(t *testing.T, entries ...headerEntry) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		if err := tw.WriteHeader(&tar.Header{Name: e.name, Linkname: e.link, Typeflag: e.kind, Mode: e.mode, Uid: e.uid, Gid: e.uid}); err != nil {
			t.Fatal(err)
		}
	}
	tw.Close()
	return buf.Bytes()
}

// umoci insert writes the root as "/", and its files from it: names are
// taken from the root, "/" sets the root's header as "./" does, and a
// ".." that stays inside the root is applied as unpackers apply it.
func TestLeadingSlashNamesAreFromTheRoot(t *testing.T) {
	blob := tarOf(t,
		headerEntry{name: "/", kind: tar.TypeDir, mode: 0o750, uid: 1000},
		headerEntry{name: "/abs/", kind: tar.TypeDir, mode: 0o700, uid: 5},
		headerEntry{name: "/abs/path", kind: tar.TypeReg, mode: 0o644},
		headerEntry{name: "//two/slashes", kind: tar.TypeReg, mode: 0o644},
		headerEntry{name: "x/../inner", kind: tar.TypeReg, mode: 0o644},
		headerEntry{name: "/hl", link: "/abs/path", kind: tar.TypeLink},
	)
	idx := build(t, blob, 0)
	if idx.Refused != "" {
		t.Fatalf("refused: %s", idx.Refused)
	}
	tr, err := Merge([]*Index{idx})
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Join([]string{
		" d 4 #1",
		"/abs d 2 #2",
		"/abs/path f 2 #3",
		"/hl f 2 #3",
		"/inner f 1 #4",
		"/two d 2 #5",
		"/two/slashes f 1 #6",
	}, "\n")
	if got := listing(tr); got != want {
		t.Fatalf("tree:\n%s\nwant:\n%s", got, want)
	}
	if root := tr.Root.Inode.Entry; root.Mode != 0o750 || root.UID != 1000 {
		t.Fatalf("root: mode %o uid %d, want 750 and 1000 (the entry \"/\")", root.Mode, root.UID)
	}
}

// A name that climbs above the root refuses its layer, never followed;
// Merge says which layer, which entry and why.
func TestClimbingNameRefusesTheLayer(t *testing.T) {
	for _, c := range []struct{ entry headerEntry }{
		{headerEntry{name: "../../etc/evil", kind: tar.TypeReg}},
		{headerEntry{name: "/../etc/evil", kind: tar.TypeReg}},
		{headerEntry{name: "a/../../etc/evil", kind: tar.TypeReg}},
		{headerEntry{name: "ln", link: "/../etc/shadow", kind: tar.TypeLink}},
	} {
		ok := build(t, tarOf(t, headerEntry{name: "ok", kind: tar.TypeReg}), 0)
		bad := build(t, tarOf(t, headerEntry{name: "fine", kind: tar.TypeReg}, c.entry), 0)
		_, err := Merge([]*Index{ok, bad})
		var ns *NotShownError
		if !errors.As(err, &ns) || ns.Layer != 2 || ns.Digest != bad.Digest {
			t.Fatalf("%q: Merge: %v, want layer 2 not shown", c.entry.name, err)
		}
		if msg := err.Error(); !strings.Contains(msg, "climbs out of the root") || !strings.Contains(msg, c.entry.name) {
			t.Errorf("%q: %q does not name the entry and the reason", c.entry.name, msg)
		}
	}
}

// An index file that refuses its layer is built again: an earlier nsfs
// refused names this one shows.
func TestRefusedIndexFileIsJudgedAgain(t *testing.T) {
	blob := tarOf(t, headerEntry{name: "/", kind: tar.TypeDir, mode: 0o755}, headerEntry{name: "/etc/x", kind: tar.TypeReg})
	d := digest.FromBytes(blob)
	dir := t.TempDir()
	c, err := OpenCache(dir, BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	old := build(t, blob, 0)
	old.Refused = `tar entry "/" is an absolute path`
	old.table = table{}
	if err := c.writeFile(old); err != nil {
		t.Fatal(err)
	}
	open := func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(blob)), nil }
	idx, err := c.Get(d, int64(len(blob)), open)
	if err != nil || idx.Refused != "" || idx.Len() != 2 || c.Builds.Load() != 1 {
		t.Fatalf("Get: %v, refused %q, %d entries, %d builds; want the layer built again", err, idx.Refused, idx.Len(), c.Builds.Load())
	}
	// What it built is trusted from its file.
	c2, _ := OpenCache(dir, BuildOptions{})
	if idx, err := c2.Get(d, int64(len(blob)), open); err != nil || idx.Len() != 2 || c2.Builds.Load() != 0 {
		t.Fatalf("Get after a rebuild: %v, %d builds, want 0", err, c2.Builds.Load())
	}
}

// Build's errors say the layer is not shown, and why.
func TestBuildErrorsAreNotShown(t *testing.T) {
	blob := tarOf(t, headerEntry{name: "a", kind: tar.TypeReg})
	_, err := Build(bytes.NewReader(blob), digest.FromBytes([]byte("other")), -1, BuildOptions{})
	if !IsNotShown(err) || !strings.Contains(err.Error(), "do not hash to its digest") {
		t.Fatalf("Build of the wrong bytes: %v", err)
	}
}
