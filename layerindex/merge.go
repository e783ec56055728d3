package layerindex

import (
	"sort"
	"strings"

	"github.com/pkg/errors"
)

// Whiteout names (OCI image spec, "Representing Changes"): never shown.
const (
	whiteoutPrefix = ".wh."
	opaqueName     = ".wh..wh..opq"
)

// Inode is one file of a merged tree: several Nodes share it when they
// are hard links.
type Inode struct {
	// Number is the inode's place in the tree (1 is the root), the same
	// for the same layers.
	Number uint64
	Entry  *Entry // for an implicit directory, a synthesized entry
	Layer  int    // the layer Entry comes from (its bytes lie there)
	Nlink  uint32
}

// Node is one name of a merged tree.
type Node struct {
	Name  string
	Inode *Inode
	// Children of a directory, sorted by name.
	Children []*Node

	layer    int              // the layer that put this name here
	children map[string]*Node // while merging
}

// Lookup finds the child called name of directory n.
func (n *Node) Lookup(name string) *Node {
	i := sort.Search(len(n.Children), func(i int) bool { return n.Children[i].Name >= name })
	if i < len(n.Children) && n.Children[i].Name == name {
		return n.Children[i]
	}
	return nil
}

// Tree is the files a container sees when the layers are applied in
// order.
type Tree struct {
	Root   *Node
	Layers []*Index
	Inodes uint64 // how many inodes (numbers 1..Inodes)
}

// Merge applies layers in order, as an unpacker of the image would:
// an entry replaces what the path held (a directory over a directory
// keeps its contents and takes the new header), `.wh.<name>` removes
// name as lower layers had it, `.wh..wh..opq` empties its directory of
// what lower layers put there, and a hard link shares its target's inode
// as the tree holds it when the link is applied. A parent missing from
// the tar, or one that is not a directory, becomes a directory 0755 of
// root (a symlink is never followed).
func Merge(layers []*Index) (*Tree, error) {
	root := &Node{Inode: &Inode{Entry: &Entry{Kind: Dir, Mode: 0o755}, Layer: -1}, children: map[string]*Node{}}
	for li, idx := range layers {
		if idx.Refused != "" {
			return nil, errors.Errorf("layer %d (%s) is not shown: %s", li+1, idx.Digest, idx.Refused)
		}
		for i := range idx.Entries {
			if err := apply(root, li, &idx.Entries[i]); err != nil {
				return nil, errors.WithMessagef(err, "layer %d (%s)", li+1, idx.Digest)
			}
		}
	}
	t := &Tree{Root: root, Layers: layers}
	t.finish(root)
	return t, nil
}

// dir returns the directory at path, making what is missing.
func dir(root *Node, path string, layer int) *Node {
	n := root
	if path == "" {
		return n
	}
	for _, name := range strings.Split(path, "/") {
		c := n.children[name]
		if c == nil || c.Inode.Entry.Kind != Dir {
			c = &Node{Name: name, layer: layer, children: map[string]*Node{},
				Inode: &Inode{Entry: &Entry{Name: joinName(n, name), Kind: Dir, Mode: 0o755}, Layer: layer}}
			n.children[name] = c
		}
		n = c
	}
	return n
}

func joinName(parent *Node, name string) string {
	if parent.Inode.Entry.Name == "" {
		return name
	}
	return parent.Inode.Entry.Name + "/" + name
}

// find returns the node at path, nil if there is none (nothing made).
func find(root *Node, path string) *Node {
	n := root
	if path == "" {
		return n
	}
	for _, name := range strings.Split(path, "/") {
		if n.children == nil {
			return nil
		}
		if n = n.children[name]; n == nil {
			return nil
		}
	}
	return n
}

func apply(root *Node, layer int, e *Entry) error {
	if e.Name == "" {
		if e.Kind == Dir {
			root.Inode = &Inode{Entry: e, Layer: layer}
		}
		return nil
	}
	parentPath, name := "", e.Name
	if i := strings.LastIndexByte(e.Name, '/'); i >= 0 {
		parentPath, name = e.Name[:i], e.Name[i+1:]
	}
	if name == opaqueName {
		parent := dir(root, parentPath, layer)
		for k, c := range parent.children {
			if c.layer < layer {
				delete(parent.children, k)
			}
		}
		return nil
	}
	if hidden, ok := strings.CutPrefix(name, whiteoutPrefix); ok {
		if parent := find(root, parentPath); parent != nil && parent.children != nil {
			if c := parent.children[hidden]; c != nil && c.layer < layer {
				delete(parent.children, hidden)
			}
		}
		return nil
	}
	parent := dir(root, parentPath, layer)
	old := parent.children[name]
	switch e.Kind {
	case Dir:
		if old != nil && old.Inode.Entry.Kind == Dir {
			// tar -x over an existing directory: its contents stay, its
			// header is the new one.
			old.Inode = &Inode{Entry: e, Layer: layer}
			old.layer = layer
			return nil
		}
		parent.children[name] = &Node{Name: name, layer: layer, children: map[string]*Node{}, Inode: &Inode{Entry: e, Layer: layer}}
	case HardLink:
		target := find(root, e.Link)
		if target == nil || target.Inode.Entry.Kind == Dir {
			return errors.Errorf("hard link %q names %q, which is no file the layers made before it", e.Name, e.Link)
		}
		if target == old {
			return nil
		}
		parent.children[name] = &Node{Name: name, layer: layer, Inode: target.Inode}
	default:
		parent.children[name] = &Node{Name: name, layer: layer, Inode: &Inode{Entry: e, Layer: layer}}
	}
	return nil
}

// finish sorts the children, numbers the inodes in tree order and counts
// their links.
func (t *Tree) finish(n *Node) {
	if n.Inode.Number == 0 {
		t.Inodes++
		n.Inode.Number = t.Inodes
	}
	n.Inode.Nlink++
	if n.children == nil {
		return
	}
	n.Children = make([]*Node, 0, len(n.children))
	for _, c := range n.children {
		n.Children = append(n.Children, c)
	}
	n.children = nil
	sort.Slice(n.Children, func(i, j int) bool { return n.Children[i].Name < n.Children[j].Name })
	n.Inode.Nlink++ // "." and the parent's entry
	for _, c := range n.Children {
		if c.Inode.Entry.Kind == Dir {
			n.Inode.Nlink++ // its ".."
		}
		t.finish(c)
	}
}
