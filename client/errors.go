package client

import (
	stderrors "errors"
	"fmt"
	"syscall"

	"github.com/nsfs/nsfs/errdefs"
	"github.com/nsfs/nsfs/names"
	"github.com/pkg/errors"
)

// Kinds of error the client's operations return, so that a caller can tell
// them apart with errors.Is; they are the kinds the store returns
// (errdefs), and messages read like containerd's (`image "x": not found`).
var (
	ErrNotFound      = errdefs.ErrNotFound
	ErrAlreadyExists = errdefs.ErrExists
	ErrInvalid       = errdefs.ErrInvalidArgument
	ErrNotEmpty      = errdefs.ErrNotEmpty
)

// withKind is an error of kind with exactly the message format makes (no
// ": not found" suffix).
func withKind(kind error, format string, args ...any) error {
	return errdefs.Errorf(kind, format, args...)
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
	return withKind(ErrInvalid, "namespace %q: invalid namespace name: it must match %s and be at most %d characters", name, names.NamespacePattern, names.MaxNamespaceLen)
}

// ErrDaemonGone is the kind of error DaemonGone returns: the mount is
// still in the mount table, but the daemon that served it died.
var ErrDaemonGone = errors.New("the nsfs daemon is gone")

// DaemonGoneError says that the daemon serving a mount died. It unwraps
// to the file operation's own error, so errors.Is(err, syscall.ENOTCONN)
// still holds. How to get the mount back is the CLI's to say.
type DaemonGoneError struct {
	MountDir string // the mountpoint whose daemon died
	err      error  // the failed file operation's error
	reason   string // the errno's text
}

func (e *DaemonGoneError) Error() string {
	return fmt.Sprintf("the nsfs daemon serving %s is gone (%s)", e.MountDir, e.reason)
}

func (e *DaemonGoneError) Unwrap() error        { return e.err }
func (e *DaemonGoneError) Is(target error) bool { return target == ErrDaemonGone }

// DaemonGone turns the error of a file operation under mountDir into one
// that says the daemon is gone when the kernel answered ENOTCONN (the
// daemon died: "transport endpoint is not connected") or ECONNABORTED
// (it died, or its connection was aborted, while the request was in
// flight). Any other error, and nil, is returned as it is, so a caller
// can wrap every error of an operation on the mount:
//
//	if _, err := os.Stat(path); err != nil {
//		return client.DaemonGone(err, mount.Dir)
//	}
//
// which reads, after a kill -9 of the daemon:
//
//	the nsfs daemon serving /mnt is gone (transport endpoint is not connected)
func DaemonGone(err error, mountDir string) error {
	if err == nil {
		return nil
	}
	var gone *DaemonGoneError
	if errors.As(err, &gone) {
		return err
	}
	for _, errno := range []syscall.Errno{syscall.ENOTCONN, syscall.ECONNABORTED} {
		if errors.Is(err, errno) {
			return &DaemonGoneError{MountDir: mountDir, err: err, reason: errno.Error()}
		}
	}
	// A request in flight when the daemon died can also come back EIO
	// (the kernel fails what it had queued): whether the daemon is gone,
	// statfs says (only EIO is worth the look; it is rare).
	if errors.Is(err, syscall.EIO) && errors.Is(Probe(mountDir, AnswerWait), syscall.ENOTCONN) {
		return &DaemonGoneError{MountDir: mountDir, err: stderrors.Join(err, syscall.ENOTCONN), reason: syscall.ENOTCONN.Error()}
	}
	return err
}
