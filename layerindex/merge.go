package layerindex

import (
	"slices"
	"sort"
	"strings"

	"github.com/pkg/errors"
)

// Whiteout names (OCI image spec, "Representing Changes"): never shown.
const (
	whiteoutPrefix = ".wh."
	opaqueName     = ".wh..wh..opq"
)

// Inode is one file of a merged tree, as a Node shows it: the Nodes of
// hard links have Inodes of one Number.
type Inode struct {
	// Number is the inode's place in the tree (1 is the root), the same
	// for the same layers.
	Number uint64
	Entry  *Entry // for an implicit directory, a synthesized entry
	Layer  int    // the layer Entry comes from (its bytes lie there)
	Nlink  uint32
}

// Node is one name of a merged tree. The tree keeps its names in
// arrays; a Node is made when asked for (Tree.Root, Lookup, Children)
// and holds a copy of what it shows.
type Node struct {
	Name  string
	Inode *Inode

	tree  *Tree
	index uint32 // in tree.nodes
}

// Tree is the files a container sees when the layers are applied in
// order. It holds, per name, 24 bytes and, per inode, 12: names and
// headers are read from the layers' tables when a Node is made.
type Tree struct {
	Root   *Node
	Layers []*Index
	Inodes uint64 // how many inodes (numbers 1..Inodes)

	nodes  []treeNode  // nodes[0] is the root
	inodes []treeInode // inodes[n-1] is inode number n
	madeUp []nameRef   // the paths of directories no entry made
}

// nameRef is where a name lies: bytes of a layer's table (layer -1: "").
type nameRef struct {
	layer    int32
	off, len uint32
}

type treeNode struct {
	name  nameRef
	inode uint32 // its number less 1
	// A directory's children are nodes[kids:kids+nkids], in name order.
	kids, nkids uint32
}

type treeInode struct {
	layer int32 // the layer its entry comes from (-1: the root, made up)
	entry int32 // its index in the layer's table; -1-i: madeUp[i]
	nlink uint32
}

func (t *Tree) name(r nameRef) string {
	if r.len == 0 {
		return ""
	}
	return str(t.Layers[r.layer].table.data[r.off : r.off+r.len])
}

// nodeAlloc is what one Node shows, in one allocation.
type nodeAlloc struct {
	node  Node
	inode Inode
	entry Entry
}

func (t *Tree) fill(a *nodeAlloc, i uint32) *Node {
	tn := &t.nodes[i]
	ti := &t.inodes[tn.inode]
	if ti.entry >= 0 {
		a.entry = t.Layers[ti.layer].table.entry(int(ti.entry), true)
	} else {
		a.entry = Entry{Name: t.name(t.madeUp[-1-ti.entry]), Kind: Dir, Mode: 0o755}
	}
	a.inode = Inode{Number: uint64(tn.inode) + 1, Entry: &a.entry, Layer: int(ti.layer), Nlink: ti.nlink}
	a.node = Node{Name: t.name(tn.name), Inode: &a.inode, tree: t, index: i}
	return &a.node
}

// Lookup finds the child called name of directory n.
func (n *Node) Lookup(name string) *Node {
	t := n.tree
	tn := t.nodes[n.index]
	i := sort.Search(int(tn.nkids), func(i int) bool { return t.name(t.nodes[tn.kids+uint32(i)].name) >= name })
	if i < int(tn.nkids) && t.name(t.nodes[tn.kids+uint32(i)].name) == name {
		return t.fill(&nodeAlloc{}, tn.kids+uint32(i))
	}
	return nil
}

// Children are the names in directory n, sorted (none for another
// kind of file).
func (n *Node) Children() []*Node {
	t := n.tree
	tn := t.nodes[n.index]
	allocs := make([]nodeAlloc, tn.nkids)
	out := make([]*Node, tn.nkids)
	for j := range allocs {
		out[j] = t.fill(&allocs[j], tn.kids+uint32(j))
	}
	return out
}

// NumChildren is the number of names in directory n.
func (n *Node) NumChildren() int { return int(n.tree.nodes[n.index].nkids) }

// Child is the i-th name of directory n in name order (0 <= i <
// NumChildren), for a listing that goes entry by entry without making
// them all.
func (n *Node) Child(i int) *Node {
	tn := n.tree.nodes[n.index]
	return n.tree.fill(&nodeAlloc{}, tn.kids+uint32(i))
}

// merger is a tree while layers are applied: a map per directory.
type merger struct {
	layers []*Index
	nodes  []mergeNode
	inodes []mergeInode
	madeUp []nameRef
	// The directory the last entry went into: a tar holds a directory's
	// entries one after another. Forgotten when a name is removed or
	// replaced.
	lastPath string
	lastDir  int32
}

type mergeNode struct {
	name  nameRef
	inode int32
	layer int32 // the layer that put this name here
	// order is a directory's children as they were added. A tar lists
	// a directory's names sorted, as a walk of the tree finds them:
	// while they come so, order is all there is (a name is found by
	// binary search, and finish need not sort). A name out of order, or
	// one removed or replaced, makes the map, and order then keeps
	// names since removed or replaced too.
	order    []int32
	children map[string]int32
}

type mergeInode struct {
	layer, entry int32 // as treeInode
	dir          bool
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
	entries := 1
	for _, idx := range layers {
		entries += idx.Len()
	}
	m := &merger{layers: layers, lastDir: -1, nodes: make([]mergeNode, 0, entries), inodes: make([]mergeInode, 0, entries)}
	m.madeUp = append(m.madeUp, nameRef{layer: -1})
	m.inodes = append(m.inodes, mergeInode{layer: -1, entry: -1, dir: true})
	m.nodes = append(m.nodes, mergeNode{name: nameRef{layer: -1}, layer: -1})
	for li, idx := range layers {
		if idx.Refused != "" {
			return nil, &NotShownError{Layer: li + 1, Digest: idx.Digest, Err: errors.New(idx.Refused)}
		}
		for i := 0; i < idx.Len(); i++ {
			e, nameAt := idx.table.entryAt(i, false)
			if err := m.apply(int32(li), int32(i), &e, uint32(nameAt)); err != nil {
				return nil, &NotShownError{Layer: li + 1, Digest: idx.Digest, Err: err}
			}
		}
	}
	return m.finish(), nil
}

func (m *merger) nameOf(c int32) string {
	r := m.nodes[c].name
	if r.len == 0 {
		return ""
	}
	return str(m.layers[r.layer].table.data[r.off : r.off+r.len])
}

// child is the child called name of directory dir, if it has one.
func (m *merger) child(dir int32, name string) (int32, bool) {
	n := &m.nodes[dir]
	if n.children != nil {
		c, ok := n.children[name]
		return c, ok
	}
	k := len(n.order)
	if k == 0 || m.nameOf(n.order[k-1]) < name {
		return -1, false
	}
	i := sort.Search(k, func(i int) bool { return m.nameOf(n.order[i]) >= name })
	if i < k && m.nameOf(n.order[i]) == name {
		return n.order[i], true
	}
	return -1, false
}

// addChild makes c the child called name of directory dir, in place of
// any child of that name.
func (m *merger) addChild(dir int32, name string, c int32) {
	n := &m.nodes[dir]
	if n.children == nil {
		if k := len(n.order); k == 0 || m.nameOf(n.order[k-1]) < name {
			n.order = append(n.order, c)
			return
		}
		m.toMap(dir)
	}
	n.children[name] = c
	n.order = append(n.order, c)
}

func (m *merger) removeChild(dir int32, name string) {
	m.toMap(dir)
	delete(m.nodes[dir].children, name)
}

func (m *merger) toMap(dir int32) {
	n := &m.nodes[dir]
	if n.children != nil {
		return
	}
	n.children = make(map[string]int32, len(n.order))
	for _, c := range n.order {
		n.children[m.nameOf(c)] = c
	}
}

func (m *merger) isDir(n int32) bool { return m.inodes[m.nodes[n].inode].dir }

func (m *merger) newNode(name nameRef, layer int32, inode int32) int32 {
	m.nodes = append(m.nodes, mergeNode{name: name, inode: inode, layer: layer})
	return int32(len(m.nodes) - 1)
}

func (m *merger) newInode(layer, entry int32, dir bool) int32 {
	m.inodes = append(m.inodes, mergeInode{layer: layer, entry: entry, dir: dir})
	return int32(len(m.inodes) - 1)
}

// dir returns the directory at path, a prefix of a name of layer that
// starts at byte nameAt of its table, making what is missing.
func (m *merger) dir(path string, layer int32, nameAt uint32) int32 {
	if m.lastDir >= 0 && path == m.lastPath {
		return m.lastDir
	}
	n := m.dirWalk(path, layer, nameAt)
	m.lastPath, m.lastDir = path, n
	return n
}

func (m *merger) dirWalk(path string, layer int32, nameAt uint32) int32 {
	n := int32(0)
	for start := 0; start < len(path); {
		end := componentEnd(path, start)
		name := path[start:end]
		c, ok := m.child(n, name)
		if !ok || !m.isDir(c) {
			m.madeUp = append(m.madeUp, nameRef{layer: layer, off: nameAt, len: uint32(end)})
			inode := m.newInode(layer, int32(-len(m.madeUp)), true)
			c = m.newNode(nameRef{layer: layer, off: nameAt + uint32(start), len: uint32(len(name))}, layer, inode)
			m.addChild(n, name, c)
		}
		n = c
		start = end + 1
	}
	return n
}

// componentEnd is where the name of path that starts at start ends: at
// the next '/', or the path's end.
func componentEnd(path string, start int) int {
	if end := strings.IndexByte(path[start:], '/'); end >= 0 {
		return start + end
	}
	return len(path)
}

// find returns the node at path, -1 if there is none (nothing made).
func (m *merger) find(path string) int32 {
	n := int32(0)
	for start := 0; start < len(path); {
		end := componentEnd(path, start)
		if !m.isDir(n) {
			return -1
		}
		c, ok := m.child(n, path[start:end])
		if !ok {
			return -1
		}
		n = c
		start = end + 1
	}
	return n
}

func (m *merger) apply(layer, entry int32, e *Entry, nameAt uint32) error {
	if e.Name == "" {
		if e.Kind == Dir {
			m.nodes[0].inode = m.newInode(layer, entry, true)
		}
		return nil
	}
	parentPath, name := "", e.Name
	if i := strings.LastIndexByte(e.Name, '/'); i >= 0 {
		parentPath, name = e.Name[:i], e.Name[i+1:]
	}
	if name == opaqueName {
		m.lastDir = -1
		parent := m.dir(parentPath, layer, nameAt)
		m.toMap(parent)
		for k, c := range m.nodes[parent].children {
			if m.nodes[c].layer < layer {
				delete(m.nodes[parent].children, k)
			}
		}
		return nil
	}
	if hidden, ok := strings.CutPrefix(name, whiteoutPrefix); ok {
		m.lastDir = -1
		if parent := m.find(parentPath); parent >= 0 && m.isDir(parent) {
			if c, ok := m.child(parent, hidden); ok && m.nodes[c].layer < layer {
				m.removeChild(parent, hidden)
			}
		}
		return nil
	}
	parent := m.dir(parentPath, layer, nameAt)
	ref := nameRef{layer: layer, off: nameAt + uint32(len(e.Name)-len(name)), len: uint32(len(name))}
	old, exists := m.child(parent, name)
	if exists {
		m.lastDir = -1
	}
	switch e.Kind {
	case Dir:
		if exists && m.isDir(old) {
			// tar -x over an existing directory: its contents stay, its
			// header is the new one.
			m.nodes[old].inode = m.newInode(layer, entry, true)
			m.nodes[old].layer = layer
			return nil
		}
		m.addChild(parent, name, m.newNode(ref, layer, m.newInode(layer, entry, true)))
	case HardLink:
		target := m.find(e.Link)
		if target < 0 || m.isDir(target) {
			return errors.Errorf("hard link %q names %q, which is no file the layers made before it", e.Name, e.Link)
		}
		if exists && target == old {
			return nil
		}
		m.addChild(parent, name, m.newNode(ref, layer, m.nodes[target].inode))
	default:
		m.addChild(parent, name, m.newNode(ref, layer, m.newInode(layer, entry, false)))
	}
	return nil
}

type namedKid struct {
	name string
	node int32
}

// finish lays the tree out in arrays: children sorted, inodes numbered
// in tree order, their links counted.
func (m *merger) finish() *Tree {
	t := &Tree{Layers: m.layers, nodes: make([]treeNode, 1, len(m.nodes)), madeUp: m.madeUp}
	numbers := make([]uint32, len(m.inodes)) // 0: not numbered yet
	var visit func(mn int32, tn uint32)
	visit = func(mn int32, tn uint32) {
		n := &m.nodes[mn]
		num := numbers[n.inode]
		if num == 0 {
			mi := m.inodes[n.inode]
			t.inodes = append(t.inodes, treeInode{layer: mi.layer, entry: mi.entry})
			num = uint32(len(t.inodes))
			numbers[n.inode] = num
		}
		ti := &t.inodes[num-1]
		ti.nlink++
		t.nodes[tn].name, t.nodes[tn].inode = n.name, num-1
		if !m.isDir(mn) {
			return
		}
		named := make([]namedKid, 0, len(n.order))
		sorted := true
		for _, c := range n.order {
			name := t.name(m.nodes[c].name)
			if n.children != nil && n.children[name] != c {
				continue // removed or replaced since
			}
			if len(named) > 0 && named[len(named)-1].name >= name {
				sorted = false
			}
			named = append(named, namedKid{name, c})
		}
		n.children, n.order = nil, nil
		if !sorted {
			slices.SortFunc(named, func(a, b namedKid) int { return strings.Compare(a.name, b.name) })
		}
		kids := make([]int32, len(named))
		for i, k := range named {
			kids[i] = k.node
		}
		base := uint32(len(t.nodes))
		t.nodes[tn].kids, t.nodes[tn].nkids = base, uint32(len(kids))
		ti.nlink++ // "." and the parent's entry
		for _, c := range kids {
			if m.isDir(c) {
				ti.nlink++ // its ".."
			}
			t.nodes = append(t.nodes, treeNode{})
		}
		for j, c := range kids {
			visit(c, base+uint32(j))
		}
	}
	visit(0, 0)
	t.Inodes = uint64(len(t.inodes))
	t.Root = t.fill(&nodeAlloc{}, 0)
	return t
}
