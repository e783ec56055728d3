package integration

import (
	"bytes"
	"context"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2"
	"oras.land/oras-go/v2/content/memory"
	"oras.land/oras-go/v2/registry/remote"
)

// Test images for the registry tests, built offline from seeded bytes
// (testimage_test.go) and pushed with oras-go.

// imageWithLayers builds an OCI image for arch from given layers plus
// fresh ones of the given sizes: two images built on the same layers
// share those blobs, as images on one base do.
func imageWithLayers(seed int64, arch string, shared []blob, layerSizes ...int) testImage {
	fresh := newImage(seed, arch, layerSizes...)
	img := testImage{layers: append(append([]blob{}, shared...), fresh.layers...)}
	var diffIDs []string
	for _, l := range img.layers {
		diffIDs = append(diffIDs, l.digest())
	}
	img.config = blob{mediaType: mediaTypeOCIConfig, data: mustJSON(map[string]any{
		"architecture": arch,
		"os":           "linux",
		"config":       map[string]any{"Labels": map[string]any{"nsfs.test.seed": seed}},
		"rootfs":       map[string]any{"type": "layers", "diff_ids": diffIDs},
	})}
	m := manifest{SchemaVersion: 2, MediaType: mediaTypeOCIManifest, Layers: []descriptor{}}
	cfg := img.config.descriptor()
	m.Config = &cfg
	for _, l := range img.layers {
		m.Layers = append(m.Layers, l.descriptor())
	}
	img.manifest = blob{mediaType: mediaTypeOCIManifest, data: mustJSON(m)}
	return img
}

// multiImage is an index over per-platform images.
type multiImage struct {
	index  blob
	images []testImage // in the index's order
}

func newMultiImage(images ...testImage) multiImage {
	return multiImage{index: newIndex(images...), images: images}
}

// blobs is every blob of the index: the index, then each image's.
func (m multiImage) blobs() []blob {
	out := []blob{m.index}
	for _, img := range m.images {
		out = append(out, img.blobs()...)
	}
	return out
}

func ociDesc(b blob) ocispec.Descriptor {
	return ocispec.Descriptor{MediaType: b.mediaType, Digest: digest.Digest(b.digest()), Size: int64(len(b.data))}
}

// pushToRegistry pushes blobs to repo (host/path) and tags root as tag,
// with oras.Copy from an oras-go memory store. client, if not nil, carries
// credentials.
func pushToRegistry(t *testing.T, repoName, tag string, root blob, blobs []blob, configure func(*remote.Repository)) {
	t.Helper()
	ctx := context.Background()
	store := memory.New()
	seen := map[string]bool{}
	for _, b := range append([]blob{root}, blobs...) {
		if seen[b.digest()] {
			continue
		}
		seen[b.digest()] = true
		if err := store.Push(ctx, ociDesc(b), bytes.NewReader(b.data)); err != nil {
			t.Fatalf("memory store push %s: %v", b.digest(), err)
		}
	}
	if err := store.Tag(ctx, ociDesc(root), tag); err != nil {
		t.Fatal(err)
	}
	repo, err := remote.NewRepository(repoName)
	if err != nil {
		t.Fatal(err)
	}
	repo.PlainHTTP = true
	if configure != nil {
		configure(repo)
	}
	if _, err := oras.Copy(ctx, store, tag, repo, tag, oras.DefaultCopyOptions); err != nil {
		t.Fatalf("push %s:%s to the test registry: %v", repoName, tag, err)
	}
}

// pushImage pushes a single-platform image as repo:tag.
func pushImage(t *testing.T, repoName, tag string, img testImage, configure func(*remote.Repository)) {
	t.Helper()
	pushToRegistry(t, repoName, tag, img.manifest, img.blobs(), configure)
}

// pushMulti pushes an index and its images as repo:tag.
func pushMulti(t *testing.T, repoName, tag string, m multiImage, configure func(*remote.Repository)) {
	t.Helper()
	pushToRegistry(t, repoName, tag, m.index, m.blobs(), configure)
}
