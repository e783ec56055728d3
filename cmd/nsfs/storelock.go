package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/nsfs/nsfs/client"
	"github.com/nsfs/nsfs/mountinfo"
	"github.com/pkg/errors"
	"golang.org/x/sys/unix"
)

// lockedStoreError says what to do about store root, whose meta.db
// another process has locked (err, metadata.ErrLocked): which process
// holds the lock (from /proc/locks, when it can be read), and where the
// store is mounted. A lazily unmounted mount is in no mount table, yet its
// daemon serves it until its last user leaves: that is said, rather than
// asking the user to unmount a mountpoint that no longer exists.
//
//	store S is already in use by another nsfs (S/meta.db is locked): store in use, by PID 4242; it is mounted at /mnt: unmount it first (nsfs umount /mnt)
//	store S is already in use by another nsfs (S/meta.db is locked): store in use, by PID 4242, whose mount is in no mount table: a lazily unmounted (detached) mount is served until its last user leaves (a working directory or an open file in it); the daemon exits then, or kill 4242 ends it now
func lockedStoreError(root string, err error) error {
	by := ""
	pid := lockHolder(filepath.Join(root, "meta.db"), "/proc/locks")
	if pid > 0 {
		by = fmt.Sprintf(", by PID %d", pid)
	}
	if mounts, _ := client.StoreMounts(mountinfo.Self, root); len(mounts) > 0 {
		return errors.Errorf("%v%s; it is mounted at %s: unmount it first (nsfs umount %s)", err, by, strings.Join(mounts, ", "), mounts[0])
	}
	if pid > 0 {
		return errors.Errorf("%v%s, whose mount is in no mount table: a lazily unmounted (detached) mount is served until its last user leaves "+
			"(a working directory or an open file in it); the daemon exits then, or kill %d ends it now", err, by, pid)
	}
	return errors.Errorf("%v; unmount it first (nsfs umount MOUNTPOINT); a lazily unmounted (detached) mount is in no mount table, "+
		"but is served until its last user leaves", err)
}

// lockHolder is the PID of a process holding a lock on file path, as the
// locks table (/proc/locks) lists it; 0 when unknown. Lines read:
//
//	1: FLOCK  ADVISORY  WRITE 4242 08:01:1234567 0 EOF
//
// with the device's major and minor in hex and the inode in decimal.
func lockHolder(path, locks string) int {
	var st unix.Stat_t
	if unix.Stat(path, &st) != nil {
		return 0
	}
	f, err := os.Open(locks)
	if err != nil {
		return 0
	}
	defer f.Close()
	return findLockHolder(f, unix.Major(st.Dev), unix.Minor(st.Dev), st.Ino)
}

// findLockHolder scans a locks table for a lock on the inode ino of
// device major:minor.
func findLockHolder(r io.Reader, major, minor uint32, ino uint64) int {
	want := fmt.Sprintf("%02x:%02x:%d", major, minor, ino)
	s := bufio.NewScanner(r)
	for s.Scan() {
		f := strings.Fields(s.Text())
		// A waiting lock is "1: -> FLOCK ...": one more field, and it
		// holds nothing.
		if len(f) < 6 || f[1] == "->" || f[5] != want {
			continue
		}
		if pid, err := strconv.Atoi(f[4]); err == nil && pid > 0 {
			return pid
		}
	}
	return 0
}
