// Package errdefs holds the kinds of error nsfs's packages share. An error
// wraps exactly one kind (errors.WithMessagef(ErrNotEmpty, "namespace %q
// must be empty, but it still has images, blobs")), so that errors.Is sees
// the kind and the message names the object and the reason. The naming
// rules (names/), the store (metadata/) and the CLI's client (client/)
// return these kinds; fs/ maps them to errno in one place (fs/errno.go),
// and the errno each stands for is noted beside it.
//
// Kinds that only the store can return (a damaged or locked store, an
// image gone under a writer) stay in metadata.
package errdefs

import (
	"errors"
	"fmt"
)

// The kinds are plain values, made without the stack trace
// github.com/pkg/errors.New records (nothing prints one): every nsfs
// process makes them before main.
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
	ErrNotPermitted    = errors.New("not permitted")     // EPERM: not the owner, or not root
	ErrQuota           = errors.New("quota exceeded")    // EDQUOT
)

// Errorf is an error of kind (errors.Is sees it) whose message is exactly
// what format makes, with no ": kind" after it: for a message that
// already says it all, as the CLI prints it (`label "=v": the key is
// empty`).
func Errorf(kind error, format string, args ...any) error {
	return &kindError{kind: kind, msg: fmt.Sprintf(format, args...)}
}

type kindError struct {
	kind error
	msg  string
}

func (e *kindError) Error() string        { return e.msg }
func (e *kindError) Is(target error) bool { return target == e.kind }
