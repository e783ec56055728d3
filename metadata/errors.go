package metadata

import (
	"fmt"

	"github.com/pkg/errors"
)

// Kinds of error. Every error metadata returns wraps exactly one of these
// (errors.WithMessagef(ErrNotEmpty, "namespace %q must be empty, but it still has
// images, blobs")), so that errors.Is and the Is… helpers see the kind and
// the message names the object and the reason. fs/ maps kinds to errno in one
// place.
var (
	ErrNotFound        = errors.New("not found")         // ENOENT
	ErrExists          = errors.New("already exists")    // EEXIST
	ErrNotEmpty        = errors.New("not empty")         // ENOTEMPTY
	ErrInvalidArgument = errors.New("invalid argument")  // EINVAL
	ErrNameTooLong     = errors.New("name too long")     // ENAMETOOLONG
	ErrInUse           = errors.New("in use")            // EBUSY
	ErrTooLarge        = errors.New("too large")         // EFBIG
	ErrLabelTooLarge   = errors.New("label too large")   // E2BIG
	ErrLabelsFull      = errors.New("labels full")       // ENOSPC
	ErrNoLabel         = errors.New("no such label")     // ENODATA
	ErrDigestMismatch  = errors.New("digest mismatch")   // EBADMSG
	ErrNotDirectory    = errors.New("not a directory")   // ENOTDIR
	ErrIsDirectory     = errors.New("is a directory")    // EISDIR
	ErrCrossNamespace  = errors.New("across namespaces") // EXDEV
	ErrReadOnly        = errors.New("read-only")         // EPERM
	ErrLocked          = errors.New("store in use")      // mount refuses
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

func IsNotFound(err error) bool        { return errors.Is(err, ErrNotFound) }
func IsExists(err error) bool          { return errors.Is(err, ErrExists) }
func IsNotEmpty(err error) bool        { return errors.Is(err, ErrNotEmpty) }
func IsInvalidArgument(err error) bool { return errors.Is(err, ErrInvalidArgument) }
func IsNameTooLong(err error) bool     { return errors.Is(err, ErrNameTooLong) }
func IsInUse(err error) bool           { return errors.Is(err, ErrInUse) }
func IsTooLarge(err error) bool        { return errors.Is(err, ErrTooLarge) }
func IsLabelTooLarge(err error) bool   { return errors.Is(err, ErrLabelTooLarge) }
func IsLabelsFull(err error) bool      { return errors.Is(err, ErrLabelsFull) }
func IsNoLabel(err error) bool         { return errors.Is(err, ErrNoLabel) }
func IsDigestMismatch(err error) bool  { return errors.Is(err, ErrDigestMismatch) }
func IsNotDirectory(err error) bool    { return errors.Is(err, ErrNotDirectory) }
func IsIsDirectory(err error) bool     { return errors.Is(err, ErrIsDirectory) }
func IsCrossNamespace(err error) bool  { return errors.Is(err, ErrCrossNamespace) }
func IsReadOnly(err error) bool        { return errors.Is(err, ErrReadOnly) }
func IsLocked(err error) bool          { return errors.Is(err, ErrLocked) }
func IsDamaged(err error) bool         { return errors.Is(err, ErrDamaged) }
func IsImageGone(err error) bool       { return errors.Is(err, ErrImageGone) }
