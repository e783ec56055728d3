package client

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/nsfs/nsfs/mountinfo"
	"github.com/pkg/errors"
	"golang.org/x/sys/unix"
)

// Unmounted says how Unmount took a mount away.
type Unmounted struct {
	Dir string // the mountpoint, absolute
	// Lazily: the mount was busy (a process had its working directory or
	// a file open there), so it was detached (MNT_DETACH): gone from the
	// tree at once, and the daemon exits when the last user leaves.
	Lazily bool
	// Dead: the daemon had died ("Transport endpoint is not connected").
	Dead bool
	// Hung: the daemon did not answer within a second; its connection
	// was aborted (MNT_FORCE), so that what waited for it fails instead.
	Hung bool
}

// Unmount unmounts the nsfs mount at dir, lazily when it is busy, also
// when its daemon is dead or hung (its connection is then aborted).
// Anything at dir but an nsfs mount is refused.
// As root it calls umount2(2); otherwise fusermount3 -u (-z when busy).
//
//	$ nsfs umount /mnt
//	unmounted /mnt
func Unmount(dir string) (Unmounted, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return Unmounted{}, errors.Wrapf(err, "unmount %q", dir)
	}
	fstype, _, err := mountAt(mountinfo.Self, abs)
	if err == nil && fstype == "" {
		// A path through a symlink: mountinfo has the real one. (A dead
		// mount's own path cannot be resolved, and needs not be.)
		if real, rerr := filepath.EvalSymlinks(abs); rerr == nil && real != abs {
			abs = real
			fstype, _, err = mountAt(mountinfo.Self, abs)
		}
	}
	switch {
	case err != nil:
		return Unmounted{}, err
	case fstype == "":
		if _, serr := os.Stat(abs); serr != nil {
			return Unmounted{}, errors.Wrapf(serr, "unmount %s", abs)
		}
		return Unmounted{}, errors.Errorf("%s is not a mount point", abs)
	case fstype != FSType:
		return Unmounted{}, errors.Errorf("%s is not an nsfs mount (its filesystem is %s): use umount(8) for it", abs, fstype)
	}

	res := Unmounted{Dir: abs}
	switch Probe(abs, AnswerWait) {
	case unix.ENOTCONN:
		res.Dead = true
	case unix.ETIMEDOUT:
		res.Hung = true
	}
	err = unmount(abs, res.Hung)
	if errors.Is(err, unix.EBUSY) {
		res.Lazily = true
		err = unix.Unmount(abs, unix.MNT_DETACH)
	}
	if errors.Is(err, unix.EPERM) && os.Geteuid() != 0 {
		// Not root: the setuid helper unmounts what the user mounted.
		err = fusermountUnmount(abs, res.Lazily)
		if err != nil && !res.Lazily && strings.Contains(err.Error(), "busy") {
			res.Lazily = true
			err = fusermountUnmount(abs, true)
		}
	}
	if err != nil {
		return Unmounted{}, errors.Wrapf(err, "unmount %s", abs)
	}
	return res, nil
}

// AnswerWait is how long a daemon has to answer statfs before Unmount
// takes it for hung.
const AnswerWait = time.Second

// Probe asks the filesystem at dir for statfs, which a FUSE daemon must
// answer itself (stat may come from the kernel's cache): nil when it
// answers, ENOTCONN when its daemon is dead, ETIMEDOUT when nothing
// answers within wait (hung, or killed while stuck in the kernel: such a
// process cannot end, so its connection stays up and nobody answers), or
// statfs's own error (ENOENT). A probe left waiting ends when the
// connection is aborted, or with this process.
func Probe(dir string, wait time.Duration) error {
	answer := make(chan error, 1)
	go func() {
		var st unix.Statfs_t
		answer <- unix.Statfs(dir, &st)
	}()
	select {
	case err := <-answer:
		if errors.Is(err, unix.ENOTCONN) || errors.Is(err, unix.ECONNABORTED) {
			return unix.ENOTCONN
		}
		return err
	case <-time.After(wait):
		return unix.ETIMEDOUT
	}
}

// unmount unmounts dir; for a hung daemon with MNT_FORCE, which aborts
// the FUSE connection first: every request waiting for the daemon fails
// (ENOTCONN) instead of waiting forever, and a process stuck in the
// kernel can end.
func unmount(dir string, hung bool) error {
	flags, patience := 0, 200*time.Millisecond
	if hung {
		// The requests the abort fails (our own probe among them) take a
		// moment to let go of the mount.
		flags, patience = unix.MNT_FORCE, time.Second
	}
	err := unix.Unmount(dir, flags)
	// A process passing through (a find, a shell's completion) holds a
	// mount busy for a blink; one that stays makes it a lazy unmount.
	for deadline := time.Now().Add(patience); errors.Is(err, unix.EBUSY) && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
		err = unix.Unmount(dir, 0)
	}
	return err
}

func fusermountUnmount(dir string, lazily bool) error {
	args := []string{"-u", dir}
	if lazily {
		args = []string{"-u", "-z", dir}
	}
	out, err := exec.Command("fusermount3", args...).CombinedOutput()
	if err != nil {
		return errors.Errorf("fusermount3 %s: %s", strings.Join(args, " "), strings.TrimSpace(string(out)))
	}
	return nil
}
