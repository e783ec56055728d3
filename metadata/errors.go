package metadata

import (
	"fmt"

	"github.com/nsfs/nsfs/errdefs"
	"github.com/pkg/errors"
)

// Kinds of error. Every error metadata returns wraps exactly one of these
// (errors.WithMessagef(ErrNotEmpty, "namespace %q must be empty, but it still has
// images, blobs")), so that errors.Is and the Is… helpers see the kind and
// the message names the object and the reason. fs/ maps kinds to errno in one
// place. The shared kinds are errdefs's, named here too so that callers of
// metadata need only metadata.
var (
	ErrNotFound        = errdefs.ErrNotFound        // ENOENT
	ErrExists          = errdefs.ErrExists          // EEXIST
	ErrNotEmpty        = errdefs.ErrNotEmpty        // ENOTEMPTY
	ErrInvalidArgument = errdefs.ErrInvalidArgument // EINVAL
	ErrNameTooLong     = errdefs.ErrNameTooLong     // ENAMETOOLONG
	ErrInUse           = errdefs.ErrInUse           // EBUSY
	ErrTooLarge        = errdefs.ErrTooLarge        // EFBIG
	ErrLabelTooLarge   = errdefs.ErrLabelTooLarge   // E2BIG
	ErrLabelsFull      = errdefs.ErrLabelsFull      // ENOSPC
	ErrNoLabel         = errdefs.ErrNoLabel         // ENODATA
	ErrDigestMismatch  = errdefs.ErrDigestMismatch  // EBADMSG
	ErrNotDirectory    = errdefs.ErrNotDirectory    // ENOTDIR
	ErrIsDirectory     = errdefs.ErrIsDirectory     // EISDIR
	ErrCrossNamespace  = errdefs.ErrCrossNamespace  // EXDEV
	ErrReadOnly        = errdefs.ErrReadOnly        // EPERM
	ErrNotPermitted    = errdefs.ErrNotPermitted    // EPERM
	ErrQuota           = errdefs.ErrQuota           // EDQUOT
)

// Kinds only the store returns.
var (
	ErrLocked = errors.New("store in use") // mount refuses
	// ErrDamaged: the store's records are unreadable or disagree with its
	// files in a way only nsfs fsck may settle; mount refuses.
	ErrDamaged = errors.New("store damaged")
)

// ErrImageGone refines ErrNotFound (errors.Is sees both, fs/ maps it to
// ENOENT like any ErrNotFound): a write that named an image by its ID
// (ImageWrite.ID) found that the image is no longer under that ref — it was
// renamed, removed or replaced meanwhile. fs/ tells it apart from a missing
// blob or namespace: the bytes of a file whose image is gone go nowhere,
// and its close succeeds, as on any filesystem.
var ErrImageGone = fmt.Errorf("image gone: %w", ErrNotFound)

// The Is… helpers code outside metadata uses; metadata's tests have the
// others (errors_test.go), and errors.Is serves every kind.
func IsNotFound(err error) bool        { return errors.Is(err, ErrNotFound) }
func IsExists(err error) bool          { return errors.Is(err, ErrExists) }
func IsInvalidArgument(err error) bool { return errors.Is(err, ErrInvalidArgument) }
func IsLocked(err error) bool          { return errors.Is(err, ErrLocked) }
func IsDamaged(err error) bool         { return errors.Is(err, ErrDamaged) }
func IsImageGone(err error) bool       { return errors.Is(err, ErrImageGone) }
