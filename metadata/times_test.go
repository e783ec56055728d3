package metadata

import (
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

// A directory's times move when an entry comes, goes or is renamed in
// it, and only then; a label changes ctime only; utimes sets mtime.
func TestTimes(t *testing.T) {
	db := openTestDB(t, Options{})
	dirTimes := func(ns, dir string) Times {
		t.Helper()
		times, ok, err := db.DirTimes(ns, dir)
		if err != nil || !ok {
			t.Fatalf("DirTimes(%q, %q) = %v, %v", ns, dir, ok, err)
		}
		if dir == FileLayoutIndex {
			// A stat of index.json reads its bytes and times at once.
			data, both, err := db.Layout().IndexAndTimes(ns)
			index, _ := db.Layout().Index(ns)
			if err != nil || both != times || string(data) != string(index) {
				t.Fatalf("IndexAndTimes(%q) = %d bytes, %+v, %v; want Index's %d bytes and DirTimes' %+v", ns, len(data), both, err, len(index), times)
			}
		}
		return times
	}
	// moved reports whether dir's times moved across fn.
	moved := func(ns, dir string, fn func()) bool {
		t.Helper()
		before := dirTimes(ns, dir)
		time.Sleep(2 * time.Millisecond)
		fn()
		after := dirTimes(ns, dir)
		if after.Modified.Equal(before.Modified) != after.Changed.Equal(before.Changed) {
			t.Errorf("%s of %q: mtime and ctime moved apart: %+v then %+v", dir, ns, before, after)
		}
		return !after.Modified.Equal(before.Modified)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}

	if !moved("", "", func() { _, err := db.Namespaces().Create("foo", nil); must(err) }) {
		t.Error("ns/ did not change when foo was made")
	}
	img := seedImage(t, db, "foo", "x")
	for _, c := range []struct {
		what   string
		fn     func()
		moves  []string
		stills []string
	}{
		{"put a/b/c", func() {
			_, err := db.Images().Put(ImageWrite{Namespace: "foo", Ref: "a/b/c", Manifest: img.manifest})
			must(err)
		}, []string{"images", "images/a", "images/a/b", FileLayoutIndex}, []string{DirNamespace, DirBlobs}}, // claims are no write in blobs/sha256
		{"put a/b/d", func() {
			_, err := db.Images().Put(ImageWrite{Namespace: "foo", Ref: "a/b/d", Manifest: img.manifest})
			must(err)
		}, []string{"images/a/b", FileLayoutIndex}, []string{"images", "images/a", DirBlobs}},
		{"replace a/b/d", func() {
			_, err := db.Images().Put(ImageWrite{Namespace: "foo", Ref: "a/b/d", Manifest: img.manifest})
			must(err)
		}, nil, []string{"images", "images/a", "images/a/b"}},
		{"label a/b/d", func() { must(db.Labels().Set(Object{Namespace: "foo", Image: "a/b/d"}, "k", "v", nil)) },
			nil, []string{"images/a/b", DirNamespace}},
		{"rename a/b/d to a/e", func() { must(db.Images().Rename("foo", "a/b/d", "foo", "a/e", false)) },
			[]string{"images/a", "images/a/b"}, []string{"images", FileLayoutIndex}}, // rsync renames what it writes
		{"mkdir a/f", func() { must(db.Images().MakeDir("foo", "a/f")) }, []string{"images/a"}, []string{"images/a/b", "images"}},
		{"rmdir a/f", func() { must(db.Images().RemoveDir("foo", "a/f")) }, []string{"images/a"}, []string{"images"}},
		{"mkdir a/f again", func() { must(db.Images().MakeDir("foo", "a/f")) }, []string{"images/a", "images/a/f"}, []string{"images"}},
		{"rm a/e and a/b/c", func() { must(db.Images().Delete("foo", "a/e")); must(db.Images().Delete("foo", "a/b/c")) },
			[]string{"images/a", "images/a/b", FileLayoutIndex}, []string{"images", DirBlobs}},
		{"write a blob", func() { mustWriteBlob(t, db, "foo", []byte("loose")) }, []string{DirBlobs}, []string{"images", DirNamespace, FileLayoutIndex}},
		{"rm it", func() { must(db.Content().Delete("foo", digest.FromBytes([]byte("loose")))) }, []string{DirBlobs}, []string{"images"}},
	} {
		before := map[string]Times{}
		for _, dir := range append(c.moves, c.stills...) {
			before[dir] = dirTimes("foo", dir)
		}
		time.Sleep(2 * time.Millisecond)
		c.fn()
		for _, dir := range c.moves {
			if after := dirTimes("foo", dir); !after.Modified.After(before[dir].Modified) || !after.Changed.Equal(after.Modified) {
				t.Errorf("%s: %s did not move: %+v then %+v", c.what, dir, before[dir], after)
			}
		}
		for _, dir := range c.stills {
			if after := dirTimes("foo", dir); after != before[dir] {
				t.Errorf("%s: %s moved: %+v then %+v", c.what, dir, before[dir], after)
			}
		}
	}

	// A label: ctime only, of the image and of the namespace.
	img = seedImage(t, db, "foo", "y") // the removals dropped x's blobs
	_, err := db.Images().Put(ImageWrite{Namespace: "foo", Ref: "y", Manifest: img.manifest})
	must(err)
	put, _ := db.Images().Stat("foo", "y")
	time.Sleep(2 * time.Millisecond)
	must(db.Labels().Set(Object{Namespace: "foo", Image: "y"}, "k", "v", nil))
	got, _ := db.Images().Stat("foo", "y")
	if !got.UpdatedAt.Equal(put.UpdatedAt) || !got.ChangedAt.After(put.ChangedAt) {
		t.Errorf("image after a label: mtime %v → %v, ctime %v → %v; want the ctime only to move", put.UpdatedAt, got.UpdatedAt, put.ChangedAt, got.ChangedAt)
	}
	nsBefore := dirTimes("foo", DirNamespace)
	time.Sleep(2 * time.Millisecond)
	must(db.Labels().Set(Object{Namespace: "foo"}, "k", "v", nil))
	if nsAfter := dirTimes("foo", DirNamespace); !nsAfter.Modified.Equal(nsBefore.Modified) || !nsAfter.Changed.After(nsBefore.Changed) {
		t.Errorf("namespace after a label: %+v then %+v; want the ctime only to move", nsBefore, nsAfter)
	}
	blob := Object{Namespace: "foo", Blob: img.config.Digest}
	b0, _ := db.Content().Stat("foo", img.config.Digest)
	time.Sleep(2 * time.Millisecond)
	must(db.Labels().Set(blob, "k", "v", nil))
	b1, _ := db.Content().Stat("foo", img.config.Digest)
	if !b1.Times.Modified.Equal(b0.Times.Modified) || !b1.Times.Changed.After(b0.Times.Changed) {
		t.Errorf("blob after a label: %+v then %+v; want the ctime only to move", b0.Times, b1.Times)
	}

	// utimes: the mtime is what was set; the ctime is now.
	when := time.Date(2020, 1, 2, 3, 4, 5, 6, time.UTC)
	must(db.SetModified(Object{Namespace: "foo", Image: "y"}, when))
	must(db.SetModified(blob, when))
	must(db.SetDirModified("foo", ImagesDir("a/b"), when))
	must(db.SetDirModified("foo", DirNamespace, when))
	must(db.SetDirModified("", "", when))
	got, _ = db.Images().Stat("foo", "y")
	b2, _ := db.Content().Stat("foo", img.config.Digest)
	for what, times := range map[string]Times{
		"image": {got.UpdatedAt, got.ChangedAt}, "blob": b2.Times, "images/a/b": dirTimes("foo", "images/a/b"),
		"ns/foo": dirTimes("foo", DirNamespace), "ns/": dirTimes("", ""),
	} {
		if !times.Modified.Equal(when) || !times.Changed.After(when) {
			t.Errorf("%s after utimes: %+v, want mtime %v and a ctime of now", what, times, when)
		}
	}
	if err := db.SetDirModified("foo", ImagesDir("nope"), when); !IsNotFound(err) {
		t.Errorf("utimes of a missing directory: %v, want ErrNotFound", err)
	}
}
