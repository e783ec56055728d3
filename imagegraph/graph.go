package imagegraph

import (
	"context"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/pkg/errors"
	"oras.land/oras-go/v2/content"
)

// Fetch reads the manifest or index desc names from fetcher, verified: a
// document over MaxDocumentSize is refused before it is read, and the
// bytes must be desc.Size long and hash to desc.Digest (content.FetchAll).
func Fetch(ctx context.Context, fetcher content.Fetcher, desc ocispec.Descriptor) ([]byte, error) {
	return FetchLimited(ctx, fetcher, desc, MaxDocumentSize)
}

// FetchLimited is Fetch of any small blob (a config) of at most limit
// bytes.
func FetchLimited(ctx context.Context, fetcher content.Fetcher, desc ocispec.Descriptor, limit int64) ([]byte, error) {
	if desc.Size > limit {
		return nil, errors.Errorf("%s is %d bytes, over the %d-byte limit", desc.Digest, desc.Size, limit)
	}
	return content.FetchAll(ctx, fetcher, desc)
}

// FetchDocument is Fetch, then Parse.
func FetchDocument(ctx context.Context, fetcher content.Fetcher, desc ocispec.Descriptor) (Document, error) {
	data, err := Fetch(ctx, fetcher, desc)
	if err != nil {
		return Document{}, err
	}
	return Parse(data)
}

// Successors lists the nodes directly below desc, as oras-go's
// content.Successors does: a manifest's config and layers, an index's
// manifests. A node that is not a manifest or index has none. The
// document is read with Fetch and parsed with Parse, whose error it
// returns as is.
func Successors(ctx context.Context, fetcher content.Fetcher, desc ocispec.Descriptor) ([]Child, error) {
	if !IsDocument(desc.MediaType) {
		return nil, nil
	}
	doc, err := FetchDocument(ctx, fetcher, desc)
	if err != nil {
		return nil, err
	}
	return doc.Children, nil
}

// Visit is called by Walk for each child of a document walked: parent is
// the document that names it, depth how many indexes lie above the child
// (1 for a child of the root index), and doc the child's own document
// when it is a manifest or index that could be read and parsed (nil
// otherwise, and for every config and layer).
type Visit func(parent Document, c Child, depth int, doc *Document) error

// Walk visits, depth first and in the documents' order, every child of
// root and of the documents below it. A child whose descriptor is a
// manifest or index is read (Fetch) and parsed once; one that cannot be
// is visited without a document and walked no further (an index may be
// pulled for some platforms only). Documents with more than MaxIndexDepth
// indexes above them are not read. Walk stops at visit's first error. It
// is a Walker that visits every place a digest is named.
func Walk(ctx context.Context, fetcher content.Fetcher, root Document, visit Visit) error {
	parentOf := func(n *Node) Document {
		if n.Parent == nil {
			return root
		}
		return *n.Parent.Doc
	}
	w := Walker{
		Enter: func(n *Node) (*Document, error) {
			var doc *Document // read once: the node is then taken
			if IsDocument(n.MediaType) && !n.TooDeep {
				if parsed, err := FetchDocument(ctx, fetcher, n.Descriptor); err == nil {
					doc = &parsed
				}
			}
			return doc, visit(parentOf(n), n.Child, n.Depth, doc)
		},
		Again: func(n *Node) error { return visit(parentOf(n), n.Child, n.Depth, n.Doc) },
	}
	return w.Walk(root)
}
