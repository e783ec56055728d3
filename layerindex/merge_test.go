package layerindex

import (
	"archive/tar"
	"bytes"
	"sort"
	"strings"
	"testing"
)

type tarEntry struct {
	name, link string
	kind       byte
}

func layerOf(t *testing.T, entries ...tarEntry) *Index {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Typeflag: e.kind, Mode: 0o644, Linkname: e.link}
		if e.kind == 0 {
			h.Typeflag = tar.TypeReg
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
	}
	tw.Close()
	return build(t, buf.Bytes(), 0)
}

// listing is every path of the tree with its kind, link count and inode
// number, in tree order.
func listing(tr *Tree) string {
	var lines []string
	var walk func(n *Node, path string)
	walk = func(n *Node, path string) {
		e := n.Inode.Entry
		lines = append(lines, path+" "+string("fdslcbp"[e.Kind])+" "+string(rune('0'+n.Inode.Nlink))+" #"+string(rune('0'+n.Inode.Number%40)))
		names := []string{}
		for _, c := range n.Children() {
			names = append(names, c.Name)
			walk(c, path+"/"+c.Name)
		}
		if !sort.StringsAreSorted(names) {
			lines = append(lines, path+": children not sorted")
		}
		for _, name := range names {
			if c := n.Lookup(name); c == nil || c.Name != name {
				lines = append(lines, path+": Lookup "+name+" fails")
			}
		}
	}
	walk(tr.Root, "")
	return strings.Join(lines, "\n")
}

// Names out of tar order, replaced, whited out and made opaque, over
// directories whose names came sorted: the tree is what tar -x with
// whiteouts leaves.
func TestMergeOrderWhiteoutsAndReplacements(t *testing.T) {
	lower := layerOf(t,
		tarEntry{name: "a/", kind: tar.TypeDir},
		tarEntry{name: "a/1"}, tarEntry{name: "a/2"}, tarEntry{name: "a/3"},
		tarEntry{name: "b/", kind: tar.TypeDir},
		tarEntry{name: "b/x"}, tarEntry{name: "b/y"},
		tarEntry{name: "c/", kind: tar.TypeDir},
		tarEntry{name: "c/old"},
		tarEntry{name: "d"},
		tarEntry{name: "e/f/g"}, // parents made up
		tarEntry{name: "h", link: "a/1", kind: tar.TypeLink},
	)
	upper := layerOf(t,
		tarEntry{name: "a/0"},                     // before the names a/ holds
		tarEntry{name: "a/.wh.2"},                 // removes a/2
		tarEntry{name: "a/2/", kind: tar.TypeDir}, // and makes it again, a directory
		tarEntry{name: "b/.wh..wh..opq"},          // empties b/
		tarEntry{name: "b/z"},
		tarEntry{name: "c", kind: tar.TypeSymlink, link: "a"}, // a symlink over c/
		tarEntry{name: "d/", kind: tar.TypeDir},               // a directory over d
		tarEntry{name: "d/in"},
		tarEntry{name: "e/f/.wh.g"},
		tarEntry{name: "a/3", link: "a/1", kind: tar.TypeLink}, // replaces a/3
	)
	tr, err := Merge([]*Index{lower, upper})
	if err != nil {
		t.Fatal(err)
	}
	got := listing(tr)
	want := strings.Join([]string{
		" d 6 #1",
		"/a d 3 #2",
		"/a/0 f 1 #3",
		"/a/1 f 3 #4",
		"/a/2 d 2 #5",
		"/a/3 f 3 #4",
		"/b d 2 #6",
		"/b/z f 1 #7",
		"/c s 1 #8",
		"/d d 2 #9",
		"/d/in f 1 #10",
		"/e d 3 #11",
		"/e/f d 2 #12",
		"/h f 3 #4",
	}, "\n")
	want = strings.NewReplacer("#10", "#:", "#11", "#;", "#12", "#<").Replace(want)
	if got != want {
		t.Fatalf("tree:\n%s\nwant:\n%s", got, want)
	}
}
