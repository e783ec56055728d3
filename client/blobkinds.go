package client

import (
	"context"
	"maps"
	"sync"

	"github.com/nsfs/nsfs/imagegraph"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/content"
)

// blobKinds remembers what each blob of a pull or push is to its image
// (KindConfig, KindLayer, KindManifest, KindIndex), for the progress it
// shows and the errors it names, and the size each was first named with.
type blobKinds struct {
	mu    sync.Mutex
	kinds map[digest.Digest]string
	sizes map[digest.Digest]int64
}

func newBlobKinds() blobKinds {
	return blobKinds{kinds: map[digest.Digest]string{}, sizes: map[digest.Digest]int64{}}
}

// setKind records what desc is; the first record stays.
func (k *blobKinds) setKind(desc ocispec.Descriptor, kind string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if _, ok := k.kinds[desc.Digest]; !ok {
		k.kinds[desc.Digest] = kind
		k.sizes[desc.Digest] = desc.Size
	}
}

// kind is what desc is to the image (KindLayer when unknown).
func (k *blobKinds) kind(desc ocispec.Descriptor) string {
	k.mu.Lock()
	defer k.mu.Unlock()
	if kind, ok := k.kinds[desc.Digest]; ok {
		return kind
	}
	return KindLayer
}

// wanted is the size of every blob recorded so far.
func (k *blobKinds) wanted() map[digest.Digest]int64 {
	k.mu.Lock()
	defer k.mu.Unlock()
	return maps.Clone(k.sizes)
}

// mapRoot is oras.CopyOptions.MapRoot for a copy whose progress obs
// shows: the root is the image's manifest or index.
func (k *blobKinds) mapRoot(obs PullObserver) func(context.Context, content.ReadOnlyStorage, ocispec.Descriptor) (ocispec.Descriptor, error) {
	return func(_ context.Context, _ content.ReadOnlyStorage, root ocispec.Descriptor) (ocispec.Descriptor, error) {
		kind := KindManifest
		if imagegraph.IsIndex(root.MediaType) {
			kind = KindIndex
		}
		k.setKind(root, kind)
		obs.Queued(root, kind)
		return root, nil
	}
}
