package client

import (
	"errors"
	"fmt"
	"io/fs"
	"syscall"
	"testing"
)

func TestDaemonGone(t *testing.T) {
	// What to run to recover is the CLI's to say (cmd/nsfs remedy).
	const dir = "/nonexistent-mnt"
	for _, tc := range []struct {
		err    error
		reason string
	}{
		{&fs.PathError{Op: "stat", Path: dir + "/ns", Err: syscall.ENOTCONN}, "transport endpoint is not connected"},
		{fmt.Errorf("writing blob x: %w", &fs.PathError{Op: "write", Path: dir + "/ns/a", Err: syscall.ECONNABORTED}), "software caused connection abort"},
	} {
		got := DaemonGone(tc.err, dir)
		want := "the nsfs daemon serving /nonexistent-mnt is gone (" + tc.reason + ")"
		if got == nil || got.Error() != want {
			t.Errorf("DaemonGone(%v) = %v, want %s", tc.err, got, want)
		}
		if !errors.Is(got, ErrDaemonGone) {
			t.Errorf("DaemonGone(%v) is not ErrDaemonGone", tc.err)
		}
		var errno syscall.Errno
		if !errors.As(got, &errno) || (errno != syscall.ENOTCONN && errno != syscall.ECONNABORTED) {
			t.Errorf("DaemonGone(%v) lost the errno: %v", tc.err, errno)
		}
		if again := DaemonGone(fmt.Errorf("pull: %w", got), "/elsewhere"); again.Error() != "pull: "+want {
			t.Errorf("DaemonGone of its own error = %v, want it kept", again)
		}
	}
	other := &fs.PathError{Op: "open", Path: dir + "/ns/x", Err: syscall.ENOENT}
	if got := DaemonGone(other, dir); got != error(other) {
		t.Errorf("DaemonGone(ENOENT) = %v, want the error as it was", got)
	}
	// EIO is the daemon's only when statfs says the mount is dead; here
	// there is no mount at all.
	eio := &fs.PathError{Op: "write", Path: dir + "/ns/x", Err: syscall.EIO}
	if got := DaemonGone(eio, dir); got != error(eio) {
		t.Errorf("DaemonGone(EIO) of a live or missing mount = %v, want the error as it was", got)
	}
	if got := DaemonGone(nil, dir); got != nil {
		t.Errorf("DaemonGone(nil) = %v, want nil", got)
	}
}
