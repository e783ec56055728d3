package metadata

import (
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// MaxManifestSize bounds an image's manifest or index (ErrTooLarge).
const MaxManifestSize = 4 << 20

// Image is a named reference to a manifest or index in a namespace.
type Image struct {
	Namespace string
	Name      string // the ref, a clean relative path
	ID        uint64 // never reused; kept by replace and rename; fs/ inode
	Target    ocispec.Descriptor
	Labels    map[string]string
	CreatedAt time.Time
	UpdatedAt time.Time
}

// ValidateRef checks that a ref is a clean relative path: components
// separated by single '/', none empty, "." or "..", none over 255 bytes
// (ErrNameTooLong), no NUL, whole ref at most 4096 bytes (ErrNameTooLong).
// Anything else is ErrInvalidArgument.
func ValidateRef(ref string) error { panic("not implemented") }

// PutImage creates or replaces image ref in ns with manifest as its target.
// The bytes must be an OCI or Docker manifest or index (ErrInvalidArgument,
// the message says what is wrong), at most MaxManifestSize (ErrTooLarge).
// Every blob it names must be visible to ns (ErrNotFound naming the digest),
// except an index's children, which may be absent, and layers with URLs
// (foreign layers). Sizes named must match the blobs' (ErrInvalidArgument).
// The manifest is stored as a blob; ns claims (holds) the manifest and every
// visible blob it references, recursively through present index children.
// On replace the old target's blobs that no other image references are
// released. A component of ref that is an image gives ErrNotDirectory; ref
// naming a directory gives ErrIsDirectory. Nothing changes on error.
func (db *DB) PutImage(ns, ref string, manifest []byte) (Image, error) { panic("not implemented") }

// GetImage returns one image (ErrNotFound).
func (db *DB) GetImage(ns, ref string) (Image, error) { panic("not implemented") }

// ListImages returns every image of ns sorted by name.
func (db *DB) ListImages(ns string) ([]Image, error) { panic("not implemented") }

// DeleteImage deletes an image, then releases the blobs that no other image
// of ns references (they leave the disk when no namespace holds them).
func (db *DB) DeleteImage(ns, ref string) error { panic("not implemented") }

// RenameImage renames from to to within ns, replacing to atomically (the
// replaced image's blobs are released as by DeleteImage). The image keeps
// its ID. Renaming onto a directory is ErrIsDirectory.
func (db *DB) RenameImage(ns, from, to string) error { panic("not implemented") }

// LinkImage creates image to with from's target and labels (`ctr images
// tag`), with a new ID. ErrExists when to exists.
func (db *DB) LinkImage(ns, from, to string) (Image, error) { panic("not implemented") }
