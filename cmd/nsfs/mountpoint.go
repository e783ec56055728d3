package main

import (
	"io"
	"os"
	"syscall"

	"github.com/nsfs/nsfs/client"
	"github.com/pkg/errors"
)

// checkMountpoint refuses, before the store is opened (or created), a
// mountpoint nsfs must not mount on, so that a refused mount leaves no
// store behind: a live nsfs mount, something that is no directory, and,
// unless allowNonEmpty (--nonempty), a directory that holds files, which
// the mount would hide. It changes nothing: a dead or hung mount there is
// recovered, and a missing directory made, once the store is open
// (prepareMountpoint, which is given the probe's answer so that a hung
// mount is waited for once).
func checkMountpoint(mountpoint string, allowNonEmpty bool) (probed error, err error) {
	probed = client.Probe(mountpoint, client.AnswerWait)
	switch {
	case probed == nil:
		return nil, refuseMountpoint(mountpoint, allowNonEmpty)
	case errors.Is(probed, syscall.ENOTCONN), errors.Is(probed, syscall.ETIMEDOUT):
		return probed, nil
	case errors.Is(probed, os.ErrNotExist):
		return nil, nil
	}
	return nil, errors.Wrap(probed, "mount")
}

// refuseMountpoint says why mountpoint, which answers, cannot take the
// mount; nil when it can.
//
//	mount: /tmp/x is not empty (it holds file): a mount would hide what it holds; name an empty directory, or mount over it with --nonempty
func refuseMountpoint(mountpoint string, allowNonEmpty bool) error {
	st, err := os.Stat(mountpoint)
	if err != nil {
		return errors.Wrap(err, "mount")
	}
	top, err := topMount(mountpoint)
	if err != nil {
		return err
	}
	if top.FSType == client.FSType {
		return errors.Errorf("mount: %s is already an nsfs mount, of store %s, and its daemon is serving it: "+
			"mounting on top would hide it; unmount it first (nsfs umount %s)", mountpoint, top.Source, mountpoint)
	}
	if !st.IsDir() {
		return errors.Errorf("mount: %s is not a directory: name a directory (one that does not exist is made)", mountpoint)
	}
	if allowNonEmpty {
		return nil
	}
	entry, err := firstEntry(mountpoint)
	if err != nil {
		return errors.Wrap(err, "mount")
	}
	if entry != "" {
		return errors.Errorf("mount: %s is not empty (it holds %s): a mount would hide what it holds; "+
			"name an empty directory, or mount over it with --nonempty", mountpoint, entry)
	}
	return nil
}

// firstEntry is the name of one entry of directory dir, "" when it is
// empty.
func firstEntry(dir string) (string, error) {
	f, err := os.Open(dir)
	if err != nil {
		return "", err
	}
	defer f.Close()
	names, err := f.Readdirnames(1)
	if err == io.EOF {
		return "", nil
	}
	if err != nil || len(names) == 0 {
		return "", err
	}
	return names[0], nil
}
