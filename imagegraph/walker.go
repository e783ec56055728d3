package imagegraph

import (
	"fmt"

	"github.com/opencontainers/go-digest"
	"github.com/pkg/errors"
)

// ErrTooDeep is why a walk reads no document below more than
// MaxIndexDepth indexes (Node.TooDeep).
var ErrTooDeep = fmt.Errorf("indexes nested more than %d deep", MaxIndexDepth)

// Pass, returned by a Walker's Enter, leaves a node untaken: nothing
// below it is walked, and it is entered again wherever it is reached
// again (an absent blob another parent may require).
var Pass = errors.New("node passed over")

// Node is a descriptor a Walker reaches.
type Node struct {
	Child
	// Parent is the node whose document names this one; nil for a root
	// (a child of the root document, or a descriptor walked from).
	Parent *Node
	// Depth is how many indexes lie above the node.
	Depth int
	// TooDeep: the node is a manifest or index with more than
	// MaxIndexDepth indexes above it. Nothing below it is walked, and it
	// is not taken: reached again less deep, it is entered again.
	TooDeep bool
	// Doc is the document Enter returned for the node (nil: none), so
	// that the nodes below it know what names them.
	Doc *Document
}

// Walker walks an image graph whose documents its caller reads, by the
// caller's rules: where they are (a namespace, an archive, documents
// parsed earlier), what is required, what a failed read means. It owns
// the rest: the order (depth first, in the documents' order), how deep
// (MaxIndexDepth, told as Node.TooDeep) and once per digest: a node
// Enter takes is not entered again by the same Walker, in this walk or a
// later one. A node is taken when Enter returns no error for it and it
// is not TooDeep.
type Walker struct {
	// Enter is called for each node reached that is not taken yet. It
	// returns the node's document to walk the nodes below it (nil: none;
	// ignored for a node TooDeep), Pass to leave it untaken, or another
	// error to stop the walk with it.
	Enter func(n *Node) (*Document, error)
	// Leave, if set, is called for each node taken, after the nodes below
	// it: a post-order, children before parents.
	Leave func(n *Node) error
	// Again, if set, is called for each node reached whose digest is
	// taken, with the Doc Enter returned for it; nothing below it is
	// walked again.
	Again func(n *Node) error

	taken map[digest.Digest]*Document // what Enter returned
}

// Walk reaches the children of root, which has no index above it, and
// everything below them.
func (w *Walker) Walk(root Document) error {
	return w.walkBelow(nil, root, 0)
}

// WalkFrom reaches c itself, with no index above it, and everything
// below it.
func (w *Walker) WalkFrom(c Child) error {
	return w.reach(&Node{Child: c})
}

// walkBelow reaches the children of doc, the document of parent (nil for
// a root document), which has depth indexes above it.
func (w *Walker) walkBelow(parent *Node, doc Document, depth int) error {
	if doc.IsIndex() {
		depth++
	}
	for _, c := range doc.Children {
		if err := w.reach(&Node{Child: c, Parent: parent, Depth: depth}); err != nil {
			return err
		}
	}
	return nil
}

// reach enters n unless its digest is taken, then walks below it.
func (w *Walker) reach(n *Node) error {
	if w.taken == nil {
		w.taken = map[digest.Digest]*Document{}
	}
	if doc, taken := w.taken[n.Digest]; taken {
		if w.Again == nil {
			return nil
		}
		n.Doc = doc
		return w.Again(n)
	}
	n.TooDeep = IsDocument(n.MediaType) && n.Depth > MaxIndexDepth
	doc, err := w.Enter(n)
	if err == Pass {
		return nil
	}
	if err != nil {
		return err
	}
	if n.TooDeep {
		return nil
	}
	w.taken[n.Digest] = doc
	n.Doc = doc
	if doc != nil {
		if err := w.walkBelow(n, *doc, n.Depth); err != nil {
			return err
		}
	}
	if w.Leave != nil {
		return w.Leave(n)
	}
	return nil
}
