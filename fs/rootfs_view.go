package fs

import (
	"context"
	"encoding/binary"
	"hash/fnv"
	"io"
	"log"
	"sync"
	"time"

	"github.com/nsfs/nsfs/layerindex"
	"github.com/nsfs/nsfs/metadata"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/pkg/errors"
	"oras.land/oras-go/v2/content"
)

// rootfsView is what the rootfs/ directories of every namespace share:
// the layer indexes (on disk, beside the blobs, one per layer digest) and
// the merged trees of the images looked at lately.
type rootfsView struct {
	once  sync.Once
	cache *layerindex.Cache
	err   error
	// cursors are the decompressors reads left, shared by every open
	// file: tar -c or grep -r of a layer decompresses it about once.
	cursors *layerindex.Pool
	// prefetch decompresses ahead of a read through a layer in order.
	prefetch spanPrefetch

	mu    sync.Mutex
	trees map[digest.Digest]*layerindex.Tree // by manifest digest
	order []digest.Digest
	// resolved maps an image's target to its manifest and layers for
	// this host (what the verified documents said: the same for every
	// namespace that holds the target).
	resolved map[digest.Digest]resolvedImage
	// sniffed says of blobs a manifest names as layers whether their
	// first bytes are a tar stream: images with one that is not are not
	// listed.
	sniffed map[digest.Digest]bool
}

// rootfsTrees bounds the merged trees kept (each the size of its
// layers' tables); one is merged again from its indexes when asked.
const rootfsTrees = 16

// rootfsCursors bounds the decompressors kept between reads (each up to
// a zstd window, a few MiB, and a 64 KiB buffer).
const rootfsCursors = 8

func (f *filesystem) layerCache() (*layerindex.Cache, error) {
	v := &f.rootfs
	v.once.Do(func() {
		v.cache, v.err = layerindex.OpenCache(layerindex.StoreDir(f.db.Root()), layerindex.BuildOptions{})
		if v.err == nil {
			v.cache.Built = func(idx *layerindex.Index, took time.Duration) {
				log.Printf("rootfs: indexed layer %s (%s, %d bytes, %d entries, %d checkpoints) in %v",
					idx.Digest, idx.Compression, idx.Size, idx.Len(), len(idx.Checkpoints), took.Round(time.Millisecond))
			}
		}
		v.cursors = layerindex.NewPool(rootfsCursors)
		v.trees = map[digest.Digest]*layerindex.Tree{}
		v.sniffed = map[digest.Digest]bool{}
		v.resolved = map[digest.Digest]resolvedImage{}
	})
	return v.cache, v.err
}

// namespaceFetcher reads the blobs namespace ns can see.
func (f *filesystem) namespaceFetcher(ns nsRef) content.Fetcher {
	return content.FetcherFunc(func(_ context.Context, desc ocispec.Descriptor) (io.ReadCloser, error) {
		return f.db.Content().Open(ns.name, desc.Digest)
	})
}

type resolvedImage struct {
	manifest ocispec.Descriptor
	layers   []ocispec.Descriptor
}

// imageLayers is the manifest and layers of target for this host, read
// through namespace ns once per target; ns must see the manifest and
// every layer.
func (f *filesystem) imageLayers(ctx context.Context, ns nsRef, target ocispec.Descriptor) (ocispec.Descriptor, []ocispec.Descriptor, error) {
	v := &f.rootfs
	v.mu.Lock()
	r, ok := v.resolved[target.Digest]
	v.mu.Unlock()
	if !ok {
		var err error
		r.manifest, r.layers, err = layerindex.Layers(ctx, f.namespaceFetcher(ns), target, layerindex.HostPlatform())
		if err != nil {
			return r.manifest, nil, err
		}
		v.mu.Lock()
		if len(v.resolved) >= 1<<12 {
			clear(v.resolved)
		}
		v.resolved[target.Digest] = r
		v.mu.Unlock()
	}
	// What the namespace cannot see it cannot look into, also when
	// another namespace resolved the image.
	for _, d := range append([]ocispec.Descriptor{r.manifest}, r.layers...) {
		if _, err := f.db.Content().Stat(ns.name, d.Digest); err != nil {
			return r.manifest, nil, errors.WithMessagef(err, "%s %s", blobRole(d, r.manifest), d.Digest)
		}
	}
	return r.manifest, r.layers, nil
}

func blobRole(d, manifest ocispec.Descriptor) string {
	if d.Digest == manifest.Digest {
		return "manifest"
	}
	return "layer"
}

// rootfsShown says why image img of namespace ns has no entry under
// rootfs/, nil when it has one: its layers (for an index, the host
// platform's) must all be visible to the namespace and start as tar
// streams. A layer is not indexed for this (a listing would then read
// every layer of every image): an image that passes and still cannot be
// shown answers EIO on access, and the log says why.
func (f *filesystem) rootfsShown(ctx context.Context, ns nsRef, img metadata.Image) error {
	cache, err := f.layerCache()
	if err != nil {
		return err
	}
	_, layers, err := f.imageLayers(ctx, ns, img.Target)
	if err != nil {
		return err
	}
	v := &f.rootfs
	for _, l := range layers {
		v.mu.Lock()
		isLayer, known := v.sniffed[l.Digest]
		v.mu.Unlock()
		if !known && cache.Has(l.Digest) {
			isLayer, known = true, true
		}
		if !known {
			blob, err := f.db.Content().Open(ns.name, l.Digest)
			if err != nil {
				return errors.WithMessagef(err, "layer %s", l.Digest)
			}
			isLayer = layerindex.LooksLikeLayer(blob)
			blob.Close()
			v.mu.Lock()
			if len(v.sniffed) > 1<<16 {
				clear(v.sniffed)
			}
			v.sniffed[l.Digest] = isLayer
			v.mu.Unlock()
		}
		if !isLayer {
			return errors.Errorf("layer %s is not a tar stream (plain, gzip or zstd)", l.Digest)
		}
	}
	return nil
}

// imageTree is the merged tree of image ref of namespace ns (for an
// index, the host's platform), and the image. Every layer must be a blob
// the namespace can see; each is indexed once.
func (f *filesystem) imageTree(ctx context.Context, ns nsRef, ref string) (*layerindex.Tree, metadata.Image, error) {
	cache, err := f.layerCache()
	if err != nil {
		return nil, metadata.Image{}, err
	}
	img, err := f.db.Images().Stat(ns.name, ref)
	if err != nil {
		return nil, metadata.Image{}, err
	}
	manifest, layers, err := f.imageLayers(ctx, ns, img.Target)
	if err != nil {
		return nil, metadata.Image{}, err
	}
	v := &f.rootfs
	v.mu.Lock()
	t := v.trees[manifest.Digest]
	v.mu.Unlock()
	if t != nil {
		return t, img, nil
	}
	idxs := make([]*layerindex.Index, len(layers))
	for i, l := range layers {
		d := l.Digest
		idxs[i], err = cache.Get(d, l.Size, func() (io.ReadCloser, error) { return f.db.Content().Open(ns.name, d) })
		if err != nil {
			return nil, metadata.Image{}, layerindex.AtLayer(err, i+1)
		}
	}
	t, err = layerindex.Merge(idxs)
	if err != nil {
		return nil, metadata.Image{}, err
	}
	v.mu.Lock()
	if _, ok := v.trees[manifest.Digest]; !ok {
		if len(v.order) >= rootfsTrees {
			delete(v.trees, v.order[0])
			v.order = v.order[1:]
		}
		v.trees[manifest.Digest] = t
		v.order = append(v.order, manifest.Digest)
	}
	v.mu.Unlock()
	return t, img, nil
}

// rootfsIno is the inode number of inode number n of the tree of image
// id (target m) in namespace ns: derived, like a blob's, so it is the
// same across mounts and differs between two refs of one manifest (one
// directory must not have two parents).
func rootfsIno(ns, image uint64, m digest.Digest, n uint64) uint64 {
	h := fnv.New64a()
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], ns)
	h.Write(b[:])
	binary.BigEndian.PutUint64(b[:], image)
	h.Write(b[:])
	h.Write([]byte("rootfs"))
	h.Write([]byte(m))
	binary.BigEndian.PutUint64(b[:], n)
	h.Write(b[:])
	ino := blobInoBit | h.Sum64()&(blobInoBit-1)
	if ino == ^uint64(0) {
		ino--
	}
	return ino
}
