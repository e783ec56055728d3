// Package client is the CLI's side of a mounted nsfs store: it finds the
// mount and works on it with ordinary file operations, exactly as a shell
// user would (mkdir ns/foo, setfattr, cp, ls). Nothing here opens meta.db;
// while a store is mounted the daemon owns it.
package client

import (
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strings"

	"github.com/nsfs/nsfs/mountinfo"
	"github.com/nsfs/nsfs/names"
	"github.com/pkg/errors"
	"golang.org/x/sys/unix"
)

// FSType is the filesystem type a mounted nsfs shows in /proc/self/mountinfo.
const FSType = "fuse.nsfs"

// Mount is a mounted nsfs store.
type Mount struct {
	// Dir is the mountpoint, absolute.
	Dir string
}

// FindMount resolves the mount a command works on: dir when it is given
// (--mount, else $NSFS_MOUNT), which must be the mountpoint of a fuse.nsfs
// filesystem (not a directory inside one), else the fuse.nsfs mount that
// holds the current directory, else the one fuse.nsfs mount in
// /proc/self/mountinfo. None, or several and none holding the current
// directory, is an error that says what to do; so is a mount whose daemon
// died (see DaemonGone).
func FindMount(dir string) (Mount, error) {
	if dir == "" {
		mounts, err := nsfsMounts(mountinfo.Self)
		if err != nil {
			return Mount{}, err
		}
		// The kernel's answer (getcwd), which also names the directory
		// of a mount whose daemon died.
		if cwd, err := os.Getwd(); err == nil {
			if m := holdingMount(mounts, cwd); m != "" {
				return checkAlive(Mount{Dir: m})
			}
		}
		switch len(mounts) {
		case 0:
			return Mount{}, errors.New("no nsfs mount found: name one with --mount or NSFS_MOUNT, or start one with " + startHint)
		case 1:
			return checkAlive(Mount{Dir: mounts[0]})
		default:
			return Mount{}, errors.Errorf("%d nsfs mounts found (%s): choose one with --mount or NSFS_MOUNT", len(mounts), strings.Join(mounts, ", "))
		}
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return Mount{}, errors.Wrapf(err, "mount %q", dir)
	}
	fstype, _, err := mountAt(mountinfo.Self, abs)
	if err != nil {
		return Mount{}, err
	}
	if fstype == "" {
		// A path through a symlink: mountinfo has the real one. (A dead
		// mount's own path cannot be resolved, and needs not be: it was
		// found above.)
		if real, rerr := filepath.EvalSymlinks(abs); rerr == nil && real != abs {
			if fstype, _, err = mountAt(mountinfo.Self, real); err != nil {
				return Mount{}, err
			}
			if fstype != "" {
				abs = real
			}
		}
	}
	switch fstype {
	case FSType:
		return checkAlive(Mount{Dir: abs})
	case "":
		return Mount{}, notAMount(mountinfo.Self, abs)
	default:
		return Mount{}, errors.Errorf("%s is not a mounted nsfs store (its filesystem is %s): name an nsfs mountpoint with --mount or NSFS_MOUNT", abs, fstype)
	}
}

// notAMount says why dir, where nothing is mounted, is no nsfs store: it
// lies inside an nsfs mount (a path there is no mountpoint), it does not
// exist, or it is a plain directory.
func notAMount(table, dir string) error {
	mounts, _ := nsfsMounts(table)
	inside := enclosingMount(mounts, dir)
	if inside == "" {
		if real, err := filepath.EvalSymlinks(dir); err == nil {
			inside = enclosingMount(mounts, real)
		}
	}
	if inside != "" {
		return errors.Errorf("%s is not an nsfs mountpoint but a path inside the nsfs mount %s: name the mountpoint, --mount %s", dir, inside, inside)
	}
	if _, err := os.Stat(dir); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return errors.Errorf("%s is not an nsfs mount (it does not exist): name the mountpoint of a running nsfs, or start one with %s", dir, startHint)
		}
		return errors.Wrapf(err, "%s is not a mounted nsfs store", dir)
	}
	return errors.Errorf("%s is not an nsfs mount (nothing is mounted there): name the mountpoint of a running nsfs, or start one with %s", dir, startHint)
}

// startHint is how a message says to start a mount. It names no
// directory: the one the user gave may be a typo, or hold files a mount
// would hide, and without --root the mount would serve the default store,
// which may not be the one meant.
const startHint = "`nsfs mount [--root STORE] MOUNTPOINT`"

// enclosingMount is the innermost of mounts that path lies strictly
// inside, "" when none.
func enclosingMount(mounts []string, path string) string {
	inside := ""
	for _, m := range mounts {
		if m != path && strings.HasPrefix(path, strings.TrimSuffix(m, "/")+"/") && len(m) > len(inside) {
			inside = m
		}
	}
	return inside
}

// holdingMount is the innermost of mounts that is path or holds it, ""
// when none does.
func holdingMount(mounts []string, path string) string {
	if slices.Contains(mounts, path) {
		return path
	}
	return enclosingMount(mounts, path)
}

// checkAlive asks the mount's daemon for statfs (the kernel answers stat
// of a mount's root from its cache, but asks the daemon for statfs): a
// daemon that died answers ENOTCONN, said as DaemonGone says it.
//
// The kernel answers statfs of a FUSE mount to every user, but lets only
// the user who mounted it in without allow_other: stat of its root is
// EACCES for the others, said as notAllowed says it.
func checkAlive(m Mount) (Mount, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(m.Dir, &st); err != nil {
		return Mount{}, DaemonGone(errors.Wrapf(&os.PathError{Op: "statfs", Path: m.Dir, Err: err}, "nsfs mount %s", m.Dir), m.Dir)
	}
	var root unix.Stat_t
	if err := unix.Stat(m.Dir, &root); errors.Is(err, unix.EACCES) {
		return Mount{}, notAllowed(mountinfo.Self, m.Dir, err)
	}
	return m, nil
}

// notAllowed explains EACCES from mount dir: made without --allow-other
// by another user (as its options in the mountinfo file table say), it
// lets only that user in.
func notAllowed(table, dir string, err error) error {
	err = errors.Wrapf(&os.PathError{Op: "stat", Path: dir, Err: err}, "nsfs mount %s", dir)
	entries, _ := readMountinfo(table, "reading the mount table")
	e, ok := mountinfo.At(entries, dir)
	if !ok {
		return err
	}
	owner := ""
	for _, opt := range strings.Split(e.Options, ",") {
		if opt == "allow_other" {
			return err // refused for another reason
		}
		if uid, found := strings.CutPrefix(opt, "user_id="); found {
			owner = "uid " + uid
			if u, lerr := user.LookupId(uid); lerr == nil {
				owner = u.Username + " (uid " + uid + ")"
			}
		}
	}
	if owner == "" {
		return err
	}
	return errors.Errorf("nsfs mount %s: permission denied: %s mounted it without --allow-other, so only that user may use it; "+
		"to let other users in, mount it with --allow-other (nsfs mount --allow-other %s, or make run ARGS=--allow-other)", dir, owner, dir)
}

// nsfsMounts lists the mountpoints of fuse.nsfs filesystems in a
// mountinfo file.
func nsfsMounts(path string) ([]string, error) {
	return StoreMounts(path, "")
}

// StoreMounts lists the mountpoints of the fuse.nsfs filesystems in a
// mountinfo file that serve store root (any store when root is "").
func StoreMounts(path, root string) ([]string, error) {
	entries, err := readMountinfo(path, "looking for nsfs mounts")
	var mounts []string
	for _, e := range entries {
		if e.FSType == FSType && (root == "" || e.Source == root) {
			mounts = append(mounts, e.Mountpoint)
		}
	}
	return mounts, err
}

// readMountinfo reads a mountinfo file as one consistent table
// (mountinfo.Read); one that cannot be read is an error wrapped with
// doing (what the caller was doing).
func readMountinfo(path, doing string) ([]mountinfo.Entry, error) {
	entries, err := mountinfo.Read(path)
	return entries, errors.Wrap(err, doing)
}

// NamespaceDir is the directory of namespace name: <mount>/ns/<name>.
func (m Mount) NamespaceDir(name string) string {
	return filepath.Join(m.Dir, "ns", name)
}

// Namespace is one namespace of a mount, by name. It does not say that
// the namespace exists; Ensure makes sure it does.
type Namespace struct {
	Mount Mount
	Name  string
}

// Namespace names a namespace of m.
func (m Mount) Namespace(name string) Namespace { return Namespace{Mount: m, Name: name} }

// Dir is <mount>/ns/<name>.
func (n Namespace) Dir() string { return n.Mount.NamespaceDir(n.Name) }

// ImagesDir is <mount>/ns/<name>/images.
func (n Namespace) ImagesDir() string { return filepath.Join(n.Dir(), "images") }

// BlobsDir is <mount>/ns/<name>/blobs/sha256.
func (n Namespace) BlobsDir() string { return filepath.Join(n.Dir(), "blobs", "sha256") }

// Ensure creates the namespace when it is missing, as ctr does for
// "default" before a command that writes. An invalid name fails with the
// filesystem's EINVAL, reported as an invalid namespace name.
func (n Namespace) Ensure() error {
	if err := n.Check(); err != nil {
		return err
	}
	err := os.Mkdir(n.Dir(), 0o755)
	if err == nil || errors.Is(err, os.ErrExist) {
		return nil
	}
	return namespaceError(n.Name, err)
}

// Check refuses a name that is no namespace name (containerd's rule, as
// the store applies it) before it becomes a path (`-n ../..` must not leave
// ns/), as containerd checks it on every request.
func (n Namespace) Check() error {
	if names.ValidateNamespace(n.Name) != nil {
		return invalidNamespaceName(n.Name)
	}
	return nil
}

// CheckExists is the one place that decides whether a command may read
// namespace n: its name must be valid (Check) and the namespace must
// exist, else `namespace "NAME": not found`. Every command that reads a
// namespace calls it first, so that a mistyped -n is said to be one
// instead of showing as a missing image or blob, or as an empty listing.
// (Commands that write create the namespace instead: Ensure.)
func (n Namespace) CheckExists() error {
	if err := n.Check(); err != nil {
		return err
	}
	if _, err := os.Stat(n.Dir()); err != nil {
		return namespaceError(n.Name, DaemonGone(err, n.Mount.Dir))
	}
	return nil
}

// mountAt is the topmost mount at dir in a mountinfo file: its filesystem
// type and its source (for nsfs, the store root); "" when nothing is
// mounted at dir itself.
func mountAt(path, dir string) (fstype, source string, err error) {
	entries, err := readMountinfo(path, "reading the mount table")
	e, _ := mountinfo.At(entries, dir)
	return e.FSType, e.Source, err
}
