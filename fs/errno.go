package fs

import (
	"log"
	"strconv"
	"strings"
	"syscall"

	"github.com/nsfs/nsfs/metadata"
	"github.com/nsfs/nsfs/xattr"
	"github.com/pkg/errors"
)

// errnoKinds maps every kind of error the layers below return to the errno
// a Linux user expects. Order matters only where one error could wrap two
// kinds: the xattr kinds come first because LabelStore.Set returns the error of
// its condition check as it is.
var errnoKinds = []struct {
	kind  error
	errno syscall.Errno
}{
	{xattr.ErrNotSupported, syscall.ENOTSUP},
	{xattr.ErrInvalidName, syscall.EINVAL},
	{xattr.ErrNameTooLong, syscall.ERANGE}, // as Linux does for names over 255 bytes
	{xattr.ErrRange, syscall.ERANGE},
	{xattr.ErrExists, syscall.EEXIST},
	{xattr.ErrNoData, syscall.ENODATA},
	{xattr.ErrInvalidFlags, syscall.EINVAL},

	{metadata.ErrNotFound, syscall.ENOENT},
	{metadata.ErrExists, syscall.EEXIST},
	{metadata.ErrNotEmpty, syscall.ENOTEMPTY},
	{metadata.ErrInvalidArgument, syscall.EINVAL},
	{metadata.ErrNameTooLong, syscall.ENAMETOOLONG},
	{metadata.ErrInUse, syscall.EBUSY},
	{metadata.ErrTooLarge, syscall.EFBIG},
	{metadata.ErrLabelTooLarge, syscall.E2BIG},
	{metadata.ErrLabelsFull, syscall.ENOSPC}, // as ext4 when an inode's xattr space is full
	{metadata.ErrNoLabel, syscall.ENODATA},
	{metadata.ErrDigestMismatch, syscall.EBADMSG},
	{metadata.ErrNotDirectory, syscall.ENOTDIR},
	{metadata.ErrIsDirectory, syscall.EISDIR},
	{metadata.ErrCrossNamespace, syscall.EXDEV},
	{metadata.ErrReadOnly, syscall.EPERM},
	{metadata.ErrNotPermitted, syscall.EPERM},
	{metadata.ErrQuota, syscall.EDQUOT},
}

// toErrno is the one place where an error becomes an errno. op names the
// operation and the object ("rmdir ns/default") for the log line.
//
// Every refusal is logged with its reason, except the routine answers that
// tools provoke all the time (ENOENT from a lookup or `test -e`, ENODATA and
// ERANGE from getfattr's probing, EEXIST from `mkdir -p`, EXDEV from `mv`
// across namespaces, which then copies). Ops starting with
// "commit " (the write-back of an image or blob at fsync and close) are
// always logged: there the errno alone cannot say which blob was missing.
//
// Errors of no known kind are EIO — never EINTR (a short store operation is
// not interruptible) and never ENOSYS (it would turn the operation off for
// the whole mount) — except the conditions a caller can act on, which are
// passed on: a full disk or quota (ENOSPC, EDQUOT), and the daemon out of
// descriptors or memory (ENFILE, ENOMEM; its own EMFILE is ENFILE to the
// caller, whose descriptor table is not the one that is full).
func toErrno(op string, err error) syscall.Errno {
	if err == nil {
		return 0
	}
	errno := errnoOf(err)
	switch errno {
	case syscall.ENOENT, syscall.ENODATA, syscall.ERANGE, syscall.EEXIST, syscall.EXDEV:
		if !strings.HasPrefix(op, "commit ") {
			return errno
		}
	}
	if strings.ContainsFunc(op, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		op = strconv.Quote(op) // a name's newline or escape sequence stays out of the log
	}
	log.Printf("%s: %v", op, err)
	return errno
}

// lookupErrno maps the error of a lookup: a name that cannot exist (not a
// valid namespace, ref or digest) is simply not there.
func lookupErrno(op string, err error) syscall.Errno {
	if metadata.IsInvalidArgument(err) {
		return syscall.ENOENT
	}
	return toErrno(op, err)
}

func errnoOf(err error) syscall.Errno {
	for _, k := range errnoKinds {
		if errors.Is(err, k.kind) {
			return k.errno
		}
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		switch errno {
		case syscall.ENOSPC, syscall.EDQUOT, syscall.ENFILE, syscall.ENOMEM:
			return errno
		case syscall.EMFILE:
			// The daemon's descriptor table is full, not the caller's:
			// for the caller that is the whole filesystem's limit.
			return syscall.ENFILE
		}
	}
	return syscall.EIO
}
