package client

import (
	"context"
	"os"

	"github.com/nsfs/nsfs/imagegraph"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/pkg/errors"
)

// ImageStatus is one image as `nsfs images check` shows it (ctr's images
// check): which of the blobs it needs the namespace can see. An image may
// name blobs its namespace cannot see yet, and is incomplete until they
// arrive (restored in tar's order, images before blobs).
type ImageStatus struct {
	Ref       string
	MediaType string
	Digest    digest.Digest
	// Required are the blobs the image needs, the target included: a
	// manifest's config and layers (foreign ones aside); for an index,
	// what the platform asked for needs (every entry, if none is).
	Required int
	Present  int
	// RequiredSize and PresentSize add up their sizes.
	RequiredSize, PresentSize int64
	// Missing are the required blobs the namespace cannot see, in the
	// graph's order.
	Missing []ocispec.Descriptor
}

// Complete says whether the namespace can see every blob the image needs.
func (s ImageStatus) Complete() bool { return len(s.Missing) == 0 }

// CheckImages checks the images refs of namespace n (all of them when
// refs is empty), sorted by ref as given. Below an index, only the
// entries for platform count (nil: every entry), as a pull of that
// platform fetches them.
func (n Namespace) CheckImages(refs []string, platform *ocispec.Platform) ([]ImageStatus, error) {
	if err := n.CheckExists(); err != nil {
		return nil, err
	}
	if len(refs) == 0 {
		all, err := n.refs()
		if err != nil {
			return nil, err
		}
		refs = all
	}
	var out []ImageStatus
	for _, ref := range refs {
		st, err := n.checkImage(ref, platform)
		if err != nil {
			return nil, err
		}
		out = append(out, st)
	}
	return out, nil
}

func (n Namespace) checkImage(ref string, platform *ocispec.Platform) (ImageStatus, error) {
	p, err := n.RefPath(ref)
	if err != nil {
		return ImageStatus{}, err
	}
	data, err := os.ReadFile(p)
	if err != nil {
		return ImageStatus{}, n.imageError(ref, err)
	}
	st := ImageStatus{Ref: ref, Digest: digest.FromBytes(data), Required: 1, Present: 1}
	st.RequiredSize = int64(len(data))
	st.PresentSize = st.RequiredSize
	doc, err := imagegraph.Parse(data)
	if err != nil {
		return ImageStatus{}, errors.Errorf("image %q in namespace %q: %v", ref, n.Name, err)
	}
	st.MediaType = doc.MediaType
	t := n.Target()
	ctx := context.Background()
	w := imagegraph.Walker{Enter: func(node *imagegraph.Node) (*imagegraph.Document, error) {
		underIndex := node.Parent == nil && doc.IsIndex() || node.Parent != nil && node.Parent.Doc != nil && node.Parent.Doc.IsIndex()
		if underIndex && platform != nil && node.Platform != nil && !platformMatches(*platform, *node.Platform) {
			return nil, imagegraph.Pass // another platform's: not needed
		}
		if node.Foreign || node.TooDeep {
			return nil, nil
		}
		st.Required++
		st.RequiredSize += node.Size
		seen, err := t.Exists(ctx, node.Descriptor)
		if err != nil {
			return nil, err
		}
		if !seen {
			st.Missing = append(st.Missing, node.Descriptor)
			return nil, nil
		}
		st.Present++
		st.PresentSize += node.Size
		if !imagegraph.IsDocument(node.MediaType) || node.Parent != nil && node.Parent.Doc != nil && !node.Parent.Doc.IsIndex() {
			return nil, nil // a blob of a manifest: nothing below it
		}
		child, err := imagegraph.FetchDocument(ctx, t, node.Descriptor)
		if err != nil {
			return nil, nil // not a document after all: it counts as itself
		}
		return &child, nil
	}}
	if err := w.Walk(doc); err != nil {
		return ImageStatus{}, errors.WithMessagef(err, "image %q in namespace %q", ref, n.Name)
	}
	return st, nil
}

// incomplete says whether image ref misses a blob it needs for the host
// platform (`nsfs images ls` marks it).
func (n Namespace) incomplete(ref string) (bool, error) {
	host := HostPlatform()
	st, err := n.checkImage(ref, &host)
	if err != nil {
		return false, err
	}
	return !st.Complete(), nil
}
