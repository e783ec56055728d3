package fs

import (
	"bytes"
	"fmt"
	"log"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/nsfs/nsfs/metadata"
	"github.com/nsfs/nsfs/xattr"
	"github.com/pkg/errors"
)

// captureLog returns what f logs.
func captureLog(t *testing.T, f func()) string {
	t.Helper()
	var buf bytes.Buffer
	log.SetOutput(&buf)
	defer log.SetOutput(os.Stderr)
	f()
	return buf.String()
}

func TestToErrnoMapsEveryKind(t *testing.T) {
	cases := []struct {
		kind error
		want syscall.Errno
	}{
		{metadata.ErrNotFound, syscall.ENOENT},
		{metadata.ErrExists, syscall.EEXIST},
		{metadata.ErrNotEmpty, syscall.ENOTEMPTY},
		{metadata.ErrInvalidArgument, syscall.EINVAL},
		{metadata.ErrNameTooLong, syscall.ENAMETOOLONG},
		{metadata.ErrInUse, syscall.EBUSY},
		{metadata.ErrTooLarge, syscall.EFBIG},
		{metadata.ErrLabelTooLarge, syscall.E2BIG},
		{metadata.ErrLabelsFull, syscall.ENOSPC},
		{metadata.ErrNoLabel, syscall.ENODATA},
		{metadata.ErrDigestMismatch, syscall.EBADMSG},
		{metadata.ErrNotDirectory, syscall.ENOTDIR},
		{metadata.ErrIsDirectory, syscall.EISDIR},
		{metadata.ErrCrossNamespace, syscall.EXDEV},
		{metadata.ErrReadOnly, syscall.EPERM},
		{metadata.ErrNotPermitted, syscall.EPERM},
		{metadata.ErrQuota, syscall.EDQUOT},
		{xattr.ErrNotSupported, syscall.ENOTSUP},
		{xattr.ErrInvalidName, syscall.EINVAL},
		{xattr.ErrNameTooLong, syscall.ERANGE},
		{xattr.ErrRange, syscall.ERANGE},
		{xattr.ErrExists, syscall.EEXIST},
		{xattr.ErrNoData, syscall.ENODATA},
		{xattr.ErrInvalidFlags, syscall.EINVAL},
	}
	for _, c := range cases {
		// As the layers below return them: wrapped, naming the object.
		err := errors.Wrapf(c.kind, "namespace %q", "dev")
		var got syscall.Errno
		captureLog(t, func() { got = toErrno("op", err) })
		if got != c.want {
			t.Errorf("%v: got %v, want %v", c.kind, got, c.want)
		}
	}
}

func TestToErrnoUnknownIsEIONeverEINTROrENOSYS(t *testing.T) {
	for _, err := range []error{
		fmt.Errorf("bbolt: something broke"),
		syscall.EINTR,
		errors.Wrap(syscall.ENOSYS, "whatever"),
		&os.PathError{Op: "open", Path: "/x", Err: syscall.EIO},
	} {
		var got syscall.Errno
		captureLog(t, func() { got = toErrno("op", err) })
		if got != syscall.EIO {
			t.Errorf("%v: got %v, want EIO", err, got)
		}
	}
	var got syscall.Errno
	captureLog(t, func() { got = toErrno("op", &os.PathError{Op: "write", Path: "/x", Err: syscall.ENOSPC}) })
	if got != syscall.ENOSPC {
		t.Errorf("a full disk: got %v, want ENOSPC", got)
	}
	if got := toErrno("op", nil); got != 0 {
		t.Errorf("nil: got %v, want 0", got)
	}
}

func TestToErrnoLogsRefusalsWithTheirReason(t *testing.T) {
	err := errors.Wrap(metadata.ErrNotEmpty, `namespace "default" must be empty, but it still has images, blobs`)
	out := captureLog(t, func() { toErrno("rmdir ns/default", err) })
	want := `rmdir ns/default: namespace "default" must be empty, but it still has images, blobs`
	if !strings.Contains(out, want) {
		t.Errorf("log %q does not contain %q", out, want)
	}
}

func TestToErrnoKeepsRoutineAnswersOutOfTheLog(t *testing.T) {
	for _, kind := range []error{metadata.ErrNotFound, metadata.ErrExists, metadata.ErrNoLabel, xattr.ErrRange} {
		if out := captureLog(t, func() { toErrno("lookup ns/x", errors.Wrap(kind, "x")) }); out != "" {
			t.Errorf("%v was logged: %q", kind, out)
		}
	}
	// At a commit the errno alone cannot tell which blob was missing.
	out := captureLog(t, func() {
		toErrno("commit ns/x/images/redis (close)", errors.Wrap(metadata.ErrNotFound, "blob sha256:abc not found"))
	})
	if !strings.Contains(out, "blob sha256:abc not found") {
		t.Errorf("a commit's ENOENT was not logged: %q", out)
	}
}

// A daemon out of descriptors or memory says so, instead of EIO: the
// caller can wait and retry, and EIO would read as a broken store. The
// daemon's own EMFILE is ENFILE: the caller's descriptor table is not
// the one that is full.
func TestToErrnoPassesOnResourceLimits(t *testing.T) {
	cases := []struct {
		err  error
		want syscall.Errno
	}{
		{&os.PathError{Op: "open", Path: "/store/blobs/sha256/ab", Err: syscall.EMFILE}, syscall.ENFILE},
		{errors.Wrap(&os.PathError{Op: "open", Path: "/x", Err: syscall.ENFILE}, "open blob sha256:ab"), syscall.ENFILE},
		{errors.Wrap(syscall.ENOMEM, "buffer"), syscall.ENOMEM},
		{&os.PathError{Op: "write", Path: "/x", Err: syscall.ENOSPC}, syscall.ENOSPC},
		{&os.PathError{Op: "write", Path: "/x", Err: syscall.EDQUOT}, syscall.EDQUOT},
	}
	for _, c := range cases {
		var got syscall.Errno
		out := captureLog(t, func() { got = toErrno("open ns/dev/blobs/sha256/ab", c.err) })
		if got != c.want {
			t.Errorf("%v: got %v, want %v", c.err, got, c.want)
		}
		if out == "" {
			t.Errorf("%v was not logged", c.err)
		}
	}
}

// A name with a control character (from before refs refused them, or
// refused now) is logged quoted: one log line, no escape sequence.
func TestToErrnoQuotesControlCharactersInTheLog(t *testing.T) {
	logged := captureLog(t, func() {
		toErrno("create ns/default/images/a\nb\x1b[2J", errors.WithMessage(metadata.ErrInvalidArgument, "bad ref"))
	})
	if strings.Count(logged, "\n") != 1 || strings.Contains(logged, "\x1b") {
		t.Errorf("log %q has a raw control character", logged)
	}
	if !strings.Contains(logged, `"create ns/default/images/a\nb\x1b[2J": bad ref`) {
		t.Errorf("log %q does not name the operation quoted", logged)
	}
}
