package metadata

import "errors"

// Kind predicates only metadata's tests use (wantKind takes them as
// values); code outside metadata asks errors.Is.
func IsNotEmpty(err error) bool       { return errors.Is(err, ErrNotEmpty) }
func IsNameTooLong(err error) bool    { return errors.Is(err, ErrNameTooLong) }
func IsInUse(err error) bool          { return errors.Is(err, ErrInUse) }
func IsTooLarge(err error) bool       { return errors.Is(err, ErrTooLarge) }
func IsLabelTooLarge(err error) bool  { return errors.Is(err, ErrLabelTooLarge) }
func IsLabelsFull(err error) bool     { return errors.Is(err, ErrLabelsFull) }
func IsNoLabel(err error) bool        { return errors.Is(err, ErrNoLabel) }
func IsDigestMismatch(err error) bool { return errors.Is(err, ErrDigestMismatch) }
func IsNotDirectory(err error) bool   { return errors.Is(err, ErrNotDirectory) }
func IsIsDirectory(err error) bool    { return errors.Is(err, ErrIsDirectory) }
func IsCrossNamespace(err error) bool { return errors.Is(err, ErrCrossNamespace) }
