package client

import (
	"path"

	"github.com/nsfs/nsfs/imagegraph"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Image archives: `nsfs images import` reads an OCI image-layout tar or a
// `docker save` archive into a namespace, `nsfs images export` writes
// images as an OCI image-layout tar that also carries Docker's
// manifest.json. Both work only through the mount, with the namespace's
// Target (stat, open, O_CREAT|O_EXCL writes of blobs/sha256/<hex>, writes
// of images/<ref>).
//
// Import verifies the whole archive before it writes anything: every blob
// an image needs is there with the bytes its digest names, and every ref
// is a valid nsfs ref. Then it sends the blobs the namespace cannot see
// yet, and only then writes the images. A failure while writing the images
// puts back the ones it had written (their old targets, or none), so a
// failed import leaves no image behind; blobs it had sent stay held by
// the namespace until `rm blobs/sha256/<hex>`, as a blob written without
// an image does.
//
// By job: archive_toc.go reads the tar's table of contents, archive_plan.go
// checks and orders what an import writes, archive_docker.go converts a
// docker save archive, archive_import.go writes, archive_export.go
// exports. The CLI's files ("-", a temporary file then a rename) are
// cmd/nsfs's.

// Media types and annotations an archive uses (beside imagegraph's).
const (
	archiveDockerConfig       = "application/vnd.docker.container.image.v1+json"
	archiveDockerLayer        = "application/vnd.docker.image.rootfs.diff.tar"
	archiveDockerLayerGzip    = "application/vnd.docker.image.rootfs.diff.tar.gzip"
	annotationContainerdName  = "io.containerd.image.name"
	dockerManifestFile        = "manifest.json"
	maxArchiveJSON            = 20 << 20 // index.json, manifest.json (containerd's limit)
	importPushConcurrency     = 3
	archiveBlobMode           = 0o444
	archiveFileMode           = 0o644
	archiveDirMode            = 0o755
	gzipMagic0, gzipMagic1    = 0x1f, 0x8b
	maxSymlinkHops            = 16
	defaultImportPrefixLayout = "2006-01-02"
)

// ArchiveImage is one image of an import or an export: its ref in the
// namespace and its target.
type ArchiveImage struct {
	Ref    string
	Target ocispec.Descriptor
}

// documentWord names a manifest or index in messages, by its media type.
func documentWord(mt string) string {
	if imagegraph.IsIndex(mt) {
		return "index"
	}
	return "manifest"
}

func blobTarPath(d digest.Digest) string {
	return path.Join("blobs", d.Algorithm().String(), d.Encoded())
}
