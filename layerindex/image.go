package layerindex

import (
	"context"
	"runtime"

	"github.com/nsfs/nsfs/imagegraph"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/pkg/errors"
	"oras.land/oras-go/v2/content"
)

// HostPlatform is the platform whose manifest an index shows.
func HostPlatform() ocispec.Platform {
	return ocispec.Platform{OS: runtime.GOOS, Architecture: runtime.GOARCH}
}

// Layers returns the layers of the image target names, in order, read
// through fetcher: a manifest's own, or, for an index, those of the
// first manifest for platform (recursively through nested indexes, as
// deep as imagegraph reads). manifest is the manifest they come from.
func Layers(ctx context.Context, fetcher content.Fetcher, target ocispec.Descriptor, platform ocispec.Platform) (manifest ocispec.Descriptor, layers []ocispec.Descriptor, err error) {
	desc := target
	for depth := 0; ; depth++ {
		doc, err := imagegraph.FetchDocument(ctx, fetcher, desc)
		if err != nil {
			return desc, nil, errors.WithMessagef(err, "image %s", desc.Digest)
		}
		if !doc.IsIndex() {
			for _, c := range doc.Children {
				if c.Role != "config" {
					layers = append(layers, c.Descriptor)
				}
			}
			return desc, layers, nil
		}
		if depth >= imagegraph.MaxIndexDepth {
			return desc, nil, errors.Errorf("index %s: nested deeper than %d indexes", desc.Digest, imagegraph.MaxIndexDepth)
		}
		next, found := pick(doc, platform)
		if !found {
			return desc, nil, errors.Errorf("index %s has no manifest for %s/%s", desc.Digest, platform.OS, platform.Architecture)
		}
		desc = next
	}
}

// pick is the first child of index doc for platform (a nested index
// without a platform counts as a candidate).
func pick(doc imagegraph.Document, platform ocispec.Platform) (ocispec.Descriptor, bool) {
	for _, c := range doc.Children {
		p := c.Platform
		if p == nil {
			if imagegraph.IsIndex(c.MediaType) {
				return c.Descriptor, true
			}
			continue
		}
		if p.OS == platform.OS && normalArch(p.Architecture) == normalArch(platform.Architecture) &&
			(platform.Variant == "" || p.Variant == platform.Variant) {
			return c.Descriptor, true
		}
	}
	return ocispec.Descriptor{}, false
}

func normalArch(a string) string {
	switch a {
	case "x86_64", "x86-64":
		return "amd64"
	case "aarch64":
		return "arm64"
	}
	return a
}
