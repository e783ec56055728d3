package imagegraph

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// A Walker enters each node until it is taken, in depth-first order, and
// leaves the taken ones children first; what is TooDeep or passed is
// entered again where it is reached again; nothing below MaxIndexDepth
// indexes is walked.
func TestWalker(t *testing.T) {
	ctx := context.Background()
	m := newBlobMap()
	shared := m.manifest(t, "shared", 1)
	// chain[0] is the outermost of MaxIndexDepth+1 nested indexes; the
	// innermost names shared, which the root also names directly.
	below := shared
	var chain []ocispec.Descriptor
	for i := 0; i < MaxIndexDepth+1; i++ {
		below = m.index(t, below)
		chain = append([]ocispec.Descriptor{below}, chain...)
	}
	absent := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromString("absent"), Size: 3}
	root, err := Parse(mustJSON(t, map[string]any{"schemaVersion": 2, "manifests": []ocispec.Descriptor{chain[0], absent, shared, absent}}))
	if err != nil {
		t.Fatal(err)
	}
	entered := map[digest.Digest][]int{} // depths
	var tooDeep []digest.Digest
	var left []digest.Digest
	w := Walker{
		Enter: func(n *Node) (*Document, error) {
			entered[n.Digest] = append(entered[n.Digest], n.Depth)
			if n.TooDeep {
				tooDeep = append(tooDeep, n.Digest)
			}
			if !IsDocument(n.MediaType) {
				return nil, nil
			}
			doc, err := FetchDocument(ctx, m, n.Descriptor)
			if err != nil {
				return nil, Pass
			}
			return &doc, nil
		},
		Leave: func(n *Node) error {
			if n.Parent != nil && n.Parent.Digest == n.Digest {
				t.Errorf("%s is its own parent", n.Digest)
			}
			left = append(left, n.Digest)
			return nil
		},
	}
	if err := w.Walk(root); err != nil {
		t.Fatal(err)
	}
	for i, idx := range chain[:MaxIndexDepth] {
		if got := entered[idx.Digest]; len(got) != 1 || got[0] != i+1 {
			t.Errorf("index %d entered at depths %v, want [%d]", i, got, i+1)
		}
	}
	deepest := chain[MaxIndexDepth]
	if len(tooDeep) != 1 || tooDeep[0] != deepest.Digest {
		t.Errorf("too deep: %v, want only the index below %d others", tooDeep, MaxIndexDepth)
	}
	if got := entered[shared.Digest]; len(got) != 1 || got[0] != 1 {
		t.Errorf("the shared manifest entered at depths %v, want only [1] (below the deepest index it is not reached)", got)
	}
	if got := entered[absent.Digest]; len(got) != 2 {
		t.Errorf("a passed node entered %d times, want at each of its 2 places", len(got))
	}
	// Children first: the shared manifest's config before it, the
	// innermost index read before the outer ones.
	pos := map[digest.Digest]int{}
	for i, d := range left {
		pos[d] = i
	}
	if _, ok := pos[deepest.Digest]; ok {
		t.Errorf("a node too deep was left")
	}
	if _, ok := pos[absent.Digest]; ok {
		t.Errorf("a passed node was left")
	}
	for i := 0; i+1 < MaxIndexDepth; i++ {
		if pos[chain[i+1].Digest] > pos[chain[i].Digest] {
			t.Errorf("index %d left before the index %d it names", i, i+1)
		}
	}
	if len(left) != MaxIndexDepth+3 { // the indexes read, shared, its config and layer
		t.Errorf("left %d nodes, want %d", len(left), MaxIndexDepth+3)
	}

	// Taken nodes stay taken for a later walk; a root is TooDeep never.
	again := 0
	w.Enter = func(n *Node) (*Document, error) { again++; return nil, nil }
	if err := w.WalkFrom(Child{Descriptor: chain[0]}); err != nil || again != 0 {
		t.Errorf("a taken root walked again: %v, %d entered", err, again)
	}
	stop := fmt.Errorf("stop")
	w.Enter = func(n *Node) (*Document, error) { return nil, stop }
	if err := w.WalkFrom(Child{Descriptor: deepest}); !errors.Is(err, stop) {
		t.Errorf("Walk after Enter's error: %v", err)
	}
}
