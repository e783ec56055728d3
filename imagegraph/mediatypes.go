package imagegraph

import (
	"strings"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Media types of Docker's schema 2, which registries still serve.
const (
	MediaTypeDockerManifest     = "application/vnd.docker.distribution.manifest.v2+json"
	MediaTypeDockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json"
	MediaTypeDockerForeignLayer = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
)

// mediaTypeNonDistributablePrefix starts the OCI media types of layers
// that registries do not serve.
const mediaTypeNonDistributablePrefix = "application/vnd.oci.image.layer.nondistributable."

// IsManifest says whether mt is an OCI or Docker image manifest.
func IsManifest(mt string) bool {
	return mt == ocispec.MediaTypeImageManifest || mt == MediaTypeDockerManifest
}

// IsIndex says whether mt is an OCI index or a Docker manifest list.
func IsIndex(mt string) bool {
	return mt == ocispec.MediaTypeImageIndex || mt == MediaTypeDockerManifestList
}

// IsDocument says whether mt is a manifest's or an index's: a node whose
// bytes name other nodes.
func IsDocument(mt string) bool {
	return IsManifest(mt) || IsIndex(mt)
}

// IsNonDistributable says whether mt is a layer whose bytes registries do
// not serve (Windows base layers): oras.Copy skips them, and so do pulls.
func IsNonDistributable(mt string) bool {
	return mt == MediaTypeDockerForeignLayer || strings.HasPrefix(mt, mediaTypeNonDistributablePrefix)
}

// Intern returns the constant for one of the four media types of
// manifests and indexes, so that many decoded records share their
// strings; any other media type is returned as a new string.
func Intern(b []byte) string {
	for _, mt := range []string{ocispec.MediaTypeImageManifest, ocispec.MediaTypeImageIndex, MediaTypeDockerManifest, MediaTypeDockerManifestList} {
		if string(b) == mt {
			return mt
		}
	}
	return string(b)
}
