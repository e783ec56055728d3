package client

import (
	"context"
	"io"
	"sync"

	"github.com/nsfs/nsfs/imagegraph"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/pkg/errors"
	"oras.land/oras-go/v2"
	"oras.land/oras-go/v2/content"
)

// PushOptions choose how a push runs.
type PushOptions struct {
	// Concurrency bounds the blobs sent at once (default 3).
	Concurrency int
	// Observer, if set, hears about every blob: Fetching when its bytes
	// start leaving the namespace, Read as they are sent, Done once the
	// destination has it, Exists when the destination had it already
	// (nothing was sent).
	Observer PullObserver
}

// PushResult is what a push sent.
type PushResult struct {
	// Target is the descriptor of the image pushed.
	Target ocispec.Descriptor
	// Lacking are the manifests of an index the namespace does not hold
	// whole (platforms never pulled): they were not pushed.
	Lacking []ocispec.Descriptor
}

// Push copies image ref of the namespace to dst (a registry repository,
// or any oras-go target) as dstRef: the blobs dst lacks, then the
// manifest or index, which keeps its digest. Of an index, the manifests
// the namespace holds whole are pushed, and PushResult.Lacking names the
// others (a registry that insists on every child of an index refuses it
// then). Blobs dst already has are not sent: a push to a registry that
// has every blob sends only the manifest.
func (n Namespace) Push(ctx context.Context, ref string, dst oras.Target, dstRef string, opts PushOptions) (PushResult, error) {
	if err := n.CheckExists(); err != nil {
		return PushResult{}, err
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = 3
	}
	if opts.Observer == nil {
		opts.Observer = nopObserver{}
	}
	p := &pusher{src: n.Target(), obs: opts.Observer, blobKinds: newBlobKinds()}
	copyOpts := oras.CopyOptions{
		MapRoot: p.mapRoot(p.obs),
		CopyGraphOptions: oras.CopyGraphOptions{
			Concurrency:    opts.Concurrency,
			FindSuccessors: p.findSuccessors,
			PostCopy: func(_ context.Context, desc ocispec.Descriptor) error {
				p.obs.Done(desc)
				return nil
			},
			OnCopySkipped: func(_ context.Context, desc ocispec.Descriptor) error {
				p.obs.Exists(desc)
				return nil
			},
		},
	}
	root, err := oras.Copy(ctx, pushSource{Target: p.src, p: p}, ref, dst, dstRef, copyOpts)
	if err != nil {
		return PushResult{Lacking: p.lacking}, DaemonGone(unwrapCopyError(err), n.Mount.Dir)
	}
	// To a registry the root goes by reference, around the graph's
	// hooks: it is sent now, whatever the registry had.
	p.obs.Done(root)
	return PushResult{Target: root, Lacking: p.lacking}, nil
}

// pusher is the state of one Push.
type pusher struct {
	src *Target
	obs PullObserver

	blobKinds

	mu      sync.Mutex
	lacking []ocispec.Descriptor
}

// findSuccessors is the graph the push walks: a manifest's config and
// layers (not non-distributable ones, which registries do not take), an
// index's manifests that the namespace holds whole.
func (p *pusher) findSuccessors(ctx context.Context, fetcher content.Fetcher, desc ocispec.Descriptor) ([]ocispec.Descriptor, error) {
	if !imagegraph.IsDocument(desc.MediaType) {
		return nil, nil
	}
	data, err := imagegraph.Fetch(ctx, fetcher, desc)
	if err != nil {
		return nil, errors.Wrapf(err, "%s %s", p.kind(desc), desc.Digest)
	}
	doc, err := imagegraph.Parse(data)
	if err != nil {
		return nil, errors.Errorf("%s %s: %v", p.kind(desc), desc.Digest, err)
	}
	var children []ocispec.Descriptor
	for i, c := range doc.Children {
		kind := KindLayer
		switch {
		case doc.IsIndex():
			kind = KindManifest
			if imagegraph.IsIndex(c.MediaType) {
				kind = KindIndex
			}
			whole, err := p.holdsWhole(ctx, c.Descriptor, 0)
			if err != nil {
				return nil, err
			}
			if !whole {
				p.mu.Lock()
				p.lacking = append(p.lacking, c.Descriptor)
				p.mu.Unlock()
				continue
			}
		case i == 0:
			kind = KindConfig
		case imagegraph.IsNonDistributable(c.MediaType) || c.Foreign:
			continue
		}
		p.setKind(c.Descriptor, kind)
		p.obs.Queued(c.Descriptor, kind)
		children = append(children, c.Descriptor)
	}
	return children, nil
}

// holdsWhole says whether the namespace can see desc and everything the
// push would send below it.
func (p *pusher) holdsWhole(ctx context.Context, desc ocispec.Descriptor, depth int) (bool, error) {
	ok, err := p.src.Exists(ctx, desc)
	if err != nil || !ok {
		return false, err
	}
	if !imagegraph.IsDocument(desc.MediaType) {
		return true, nil
	}
	if depth >= imagegraph.MaxIndexDepth {
		return false, nil
	}
	data, err := imagegraph.Fetch(ctx, p.src, desc)
	if err != nil {
		return false, err
	}
	doc, err := imagegraph.Parse(data)
	if err != nil {
		return false, nil
	}
	for _, c := range doc.Children {
		if !doc.IsIndex() && (imagegraph.IsNonDistributable(c.MediaType) || c.Foreign) {
			continue
		}
		if ok, err := p.holdsWhole(ctx, c.Descriptor, depth+1); err != nil || !ok {
			return false, err
		}
	}
	return true, nil
}

// pushSource is the namespace as the push's source: it counts the bytes
// read, which are the bytes sent.
type pushSource struct {
	*Target
	p *pusher
}

func (s pushSource) Fetch(ctx context.Context, desc ocispec.Descriptor) (io.ReadCloser, error) {
	rc, err := s.Target.Fetch(ctx, desc)
	if err != nil {
		return nil, err
	}
	s.p.obs.Fetching(desc)
	return &countingReader{rc: rc, read: func(n int64) { s.p.obs.Read(desc, n) }}, nil
}
