package main

import (
	"errors"
	"path/filepath"

	"github.com/nsfs/nsfs/client"
	"github.com/nsfs/nsfs/mountinfo"
)

// remedy is what main prints after an error that has one: for a mount
// whose daemon died (client.DaemonGoneError), the command that brings it
// back, with the store root the mount table names:
//
//	nsfs: the nsfs daemon serving /mnt is gone (transport endpoint is not connected): run `nsfs mount --root /var/lib/nsfs /mnt` again to recover
//
// "" for any other error.
func remedy(err error) string {
	var gone *client.DaemonGoneError
	if !errors.As(err, &gone) {
		return ""
	}
	run := "`nsfs mount " + gone.MountDir + "`"
	if root := storeRootOf(mountinfo.Self, gone.MountDir); root != "" {
		run = "`nsfs mount --root " + root + " " + gone.MountDir + "`"
	}
	return ": run " + run + " again to recover"
}

// storeRootOf is the store root the nsfs mount at dir serves, as the
// mount table at path names it; "" when unknown.
func storeRootOf(path, dir string) string {
	entries, err := mountinfo.Read(path)
	if err != nil {
		return ""
	}
	e, ok := mountinfo.At(entries, dir)
	if !ok || e.FSType != client.FSType || !filepath.IsAbs(e.Source) {
		return ""
	}
	return e.Source
}
