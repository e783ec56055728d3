package client

import (
	"fmt"
	"syscall"

	"github.com/pkg/errors"
)

// Kinds of error the client's operations return, so that a caller can tell
// them apart with errors.Is; messages read like containerd's
// (`image "x": not found`).
var (
	ErrNotFound      = errors.New("not found")
	ErrAlreadyExists = errors.New("already exists")
	ErrInvalid       = errors.New("invalid argument")
	ErrNotEmpty      = errors.New("not empty")
)

// kindError is an error of a kind whose message already says it all
// (no ": not found" suffix).
type kindError struct {
	kind error
	msg  string
}

func (e *kindError) Error() string        { return e.msg }
func (e *kindError) Is(target error) bool { return target == e.kind }

// withKind is an error of kind with exactly the message format makes.
func withKind(kind error, format string, args ...any) error {
	return &kindError{kind: kind, msg: fmt.Sprintf(format, args...)}
}

// namespaceError turns the filesystem's answer to an operation on
// namespace name into the message a user of ctr would expect.
func namespaceError(name string, err error) error {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		switch errno {
		case syscall.EINVAL:
			return invalidNamespaceName(name)
		case syscall.ENOENT:
			return errors.Wrapf(ErrNotFound, "namespace %q", name)
		case syscall.EEXIST:
			return errors.Wrapf(ErrAlreadyExists, "namespace %q", name)
		}
	}
	return errors.Wrapf(err, "namespace %q", name)
}

// invalidNamespaceName says what a namespace name must look like.
func invalidNamespaceName(name string) error {
	return withKind(ErrInvalid, "namespace %q: invalid namespace name: it must match ^[A-Za-z0-9]+(?:[._-](?:[A-Za-z0-9]+))*$ and be at most 76 characters", name)
}
