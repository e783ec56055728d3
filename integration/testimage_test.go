package integration

import (
	"encoding/json"
	"fmt"
	"math/rand"
	"slices"
	"testing"
)

// Deterministic offline test images: configs, layers, manifests and
// indexes built from seeded random bytes, with real sha256 digests.

const (
	mediaTypeOCIManifest   = "application/vnd.oci.image.manifest.v1+json"
	mediaTypeOCIIndex      = "application/vnd.oci.image.index.v1+json"
	mediaTypeOCIConfig     = "application/vnd.oci.image.config.v1+json"
	mediaTypeOCILayer      = "application/vnd.oci.image.layer.v1.tar+gzip"
	mediaTypeDockerList    = "application/vnd.docker.distribution.manifest.list.v2+json"
	mediaTypeDockerSchema2 = "application/vnd.docker.distribution.manifest.v2+json"
	mediaTypeDockerConfig  = "application/vnd.docker.container.image.v1+json"
	mediaTypeDockerLayer   = "application/vnd.docker.image.rootfs.diff.tar.gzip"
)

// blob is content with its digest.
type blob struct {
	mediaType string
	data      []byte
}

func (b blob) hex() string    { return sha256Hex(b.data) }
func (b blob) digest() string { return "sha256:" + b.hex() }

func (b blob) descriptor() descriptor {
	return descriptor{MediaType: b.mediaType, Digest: b.digest(), Size: int64(len(b.data))}
}

type platform struct {
	Architecture string `json:"architecture"`
	OS           string `json:"os"`
}

type descriptor struct {
	MediaType string    `json:"mediaType"`
	Digest    string    `json:"digest"`
	Size      int64     `json:"size"`
	Platform  *platform `json:"platform,omitempty"`
}

type manifest struct {
	SchemaVersion int          `json:"schemaVersion"`
	MediaType     string       `json:"mediaType,omitempty"`
	Config        *descriptor  `json:"config,omitempty"`
	Layers        []descriptor `json:"layers"`
}

type index struct {
	SchemaVersion int          `json:"schemaVersion"`
	MediaType     string       `json:"mediaType"`
	Manifests     []descriptor `json:"manifests"`
}

// testImage is a single-platform image: config, layers and manifest.
type testImage struct {
	config   blob
	layers   []blob
	manifest blob
}

// blobs is every blob of the image, manifest included, as a namespace
// holding it lists them (sorted by the caller).
func (img testImage) blobs() []blob {
	return append([]blob{img.config, img.manifest}, img.layers...)
}

// hexes is the sorted `ls blobs/sha256` of a namespace holding only img.
func (img testImage) hexes() []string {
	var out []string
	for _, b := range img.blobs() {
		out = append(out, b.hex())
	}
	return sortStrings(out)
}

// randomBytes is n bytes determined by seed.
func randomBytes(seed int64, n int) []byte {
	b := make([]byte, n)
	rand.New(rand.NewSource(seed)).Read(b)
	return b
}

func mustJSON(v any) []byte {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		panic(err)
	}
	return b
}

// newImage builds an OCI image whose layers have the given sizes; the
// seed makes every byte (and so every digest) of it.
func newImage(seed int64, arch string, layerSizes ...int) testImage {
	return buildImage(seed, arch, mediaTypeOCIManifest, mediaTypeOCIConfig, mediaTypeOCILayer, layerSizes)
}

// newDockerImage is newImage with Docker schema 2 media types.
func newDockerImage(seed int64, arch string, layerSizes ...int) testImage {
	return buildImage(seed, arch, mediaTypeDockerSchema2, mediaTypeDockerConfig, mediaTypeDockerLayer, layerSizes)
}

func buildImage(seed int64, arch, manifestType, configType, layerType string, layerSizes []int) testImage {
	var img testImage
	var diffIDs []string
	for i, size := range layerSizes {
		l := blob{mediaType: layerType, data: randomBytes(seed*1000+int64(i), size)}
		img.layers = append(img.layers, l)
		diffIDs = append(diffIDs, l.digest())
	}
	img.config = blob{mediaType: configType, data: mustJSON(map[string]any{
		"architecture": arch,
		"os":           "linux",
		"config":       map[string]any{"Labels": map[string]string{"nsfs.test.seed": fmt.Sprint(seed)}},
		"rootfs":       map[string]any{"type": "layers", "diff_ids": diffIDs},
	})}
	m := manifest{SchemaVersion: 2, MediaType: manifestType, Layers: []descriptor{}}
	cfg := img.config.descriptor()
	m.Config = &cfg
	for _, l := range img.layers {
		m.Layers = append(m.Layers, l.descriptor())
	}
	img.manifest = blob{mediaType: manifestType, data: mustJSON(m)}
	return img
}

// newIndex builds an OCI index over per-platform images.
func newIndex(images ...testImage) blob {
	return buildIndex(mediaTypeOCIIndex, images)
}

// newDockerList builds a Docker manifest list over per-platform images.
func newDockerList(images ...testImage) blob {
	return buildIndex(mediaTypeDockerList, images)
}

func buildIndex(mediaType string, images []testImage) blob {
	idx := index{SchemaVersion: 2, MediaType: mediaType}
	for _, img := range images {
		var cfg struct {
			Architecture string `json:"architecture"`
		}
		if err := json.Unmarshal(img.config.data, &cfg); err != nil {
			panic(err)
		}
		desc := img.manifest.descriptor()
		desc.Platform = &platform{Architecture: cfg.Architecture, OS: "linux"}
		idx.Manifests = append(idx.Manifests, desc)
	}
	return blob{mediaType: mediaType, data: mustJSON(idx)}
}

func sortStrings(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return out
}

func TestTestImagesAreDeterministic(t *testing.T) {
	a, b := newImage(7, "amd64", 10, 20), newImage(7, "amd64", 10, 20)
	if a.manifest.digest() != b.manifest.digest() {
		t.Fatalf("same seed gave manifests %s and %s", a.manifest.digest(), b.manifest.digest())
	}
	if c := newImage(8, "amd64", 10, 20); c.manifest.digest() == a.manifest.digest() {
		t.Fatalf("seeds 7 and 8 gave the same manifest %s", a.manifest.digest())
	}
	var m manifest
	if err := json.Unmarshal(a.manifest.data, &m); err != nil {
		t.Fatal(err)
	}
	if m.Config.Digest != a.config.digest() || len(m.Layers) != 2 || m.Layers[1].Size != 20 {
		t.Fatalf("manifest does not describe its blobs: %s", a.manifest.data)
	}
}
