package main

import (
	"os"
	"path/filepath"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// commits, when barefs runs with -commits DIR, makes every mkdir, rmdir
// and xattr change durable the way a bbolt commit of one data page is:
// a 4 KiB data page written and fdatasynced, then a 4 KiB meta page
// written and fdatasynced, in one file in DIR (the nsfs store's
// directory, so the same disk). The benchmark's floor for the commit rows
// is this filesystem: FUSE and the disk's least durable work for the
// operation, measured together as they happen, one after the other.
var commits struct {
	sync.Mutex
	f    *os.File
	page []byte
	n    byte
}

// openCommits makes the commit file in dir.
func openCommits(dir string) error {
	f, err := os.OpenFile(filepath.Join(dir, "barefs-commits"), os.O_RDWR|os.O_CREATE|os.O_TRUNC|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return err
	}
	commits.f, commits.page = f, make([]byte, 4096)
	return nil
}

// commit writes and syncs a data page, then the meta page; nothing
// without -commits.
func commit() syscall.Errno {
	if commits.f == nil {
		return 0
	}
	commits.Lock()
	defer commits.Unlock()
	commits.n++
	commits.page[0] = commits.n
	for _, off := range []int64{2 * 4096, 0} { // the data page, then the meta page
		if _, err := commits.f.WriteAt(commits.page, off); err != nil {
			return syscall.EIO
		}
		if err := unix.Fdatasync(int(commits.f.Fd())); err != nil {
			return syscall.EIO
		}
	}
	return 0
}
