package names

import (
	"github.com/nsfs/nsfs/blobs"
	"github.com/nsfs/nsfs/errdefs"
	"github.com/opencontainers/go-digest"
	"github.com/pkg/errors"
)

// ValidateDigest checks "sha256:<64 lowercase hex>" (ErrInvalidArgument).
// The format is the blob store's (blobs.ValidateDigest); this gives its
// refusal the shared kind and one message.
func ValidateDigest(d digest.Digest) error {
	if err := blobs.ValidateDigest(d); err != nil {
		return errors.WithMessagef(errdefs.ErrInvalidArgument, "digest %q: must be sha256: and 64 lowercase hex digits", Shorten(string(d)))
	}
	return nil
}
