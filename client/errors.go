package client

import (
	"syscall"

	"github.com/pkg/errors"
)

// namespaceError turns the filesystem's answer to an operation on
// namespace name into the message a user of ctr would expect.
func namespaceError(name string, err error) error {
	var errno syscall.Errno
	if errors.As(err, &errno) && errno == syscall.EINVAL {
		return errors.Errorf("namespace %q: invalid namespace name: it must match ^[A-Za-z0-9]+(?:[._-](?:[A-Za-z0-9]+))*$ and be at most 76 characters", name)
	}
	return errors.Wrapf(err, "namespace %q", name)
}
