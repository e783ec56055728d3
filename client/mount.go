// Package client is the CLI's side of a mounted nsfs store: it finds the
// mount and works on it with ordinary file operations, exactly as a shell
// user would (mkdir ns/foo, setfattr, cp, ls). Nothing here opens meta.db;
// while a store is mounted the daemon owns it.
package client

import (
	"bufio"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/pkg/errors"
)

// FSType is the filesystem type a mounted nsfs shows in /proc/self/mountinfo.
const FSType = "fuse.nsfs"

// Mount is a mounted nsfs store.
type Mount struct {
	// Dir is the mountpoint, absolute.
	Dir string
}

// FindMount resolves the mount a command works on: dir when it is given
// (--mount, else $NSFS_MOUNT), else the one fuse.nsfs mount in
// /proc/self/mountinfo. None, or several, is an error that says what to do.
func FindMount(dir string) (Mount, error) {
	if dir != "" {
		abs, err := filepath.Abs(dir)
		if err != nil {
			return Mount{}, errors.Wrapf(err, "mount %q", dir)
		}
		if _, err := os.Stat(filepath.Join(abs, "ns")); err != nil {
			return Mount{}, errors.Errorf("%s is not a mounted nsfs store (no ns/ directory): start one with `nsfs mount %s`", abs, abs)
		}
		return Mount{Dir: abs}, nil
	}
	mounts, err := nsfsMounts("/proc/self/mountinfo")
	if err != nil {
		return Mount{}, err
	}
	switch len(mounts) {
	case 0:
		return Mount{}, errors.New("no nsfs mount found: start one with `nsfs mount MOUNTPOINT`, or name one with --mount or NSFS_MOUNT")
	case 1:
		return Mount{Dir: mounts[0]}, nil
	default:
		return Mount{}, errors.Errorf("%d nsfs mounts found (%s): choose one with --mount or NSFS_MOUNT", len(mounts), strings.Join(mounts, ", "))
	}
}

// nsfsMounts lists the mountpoints of fuse.nsfs filesystems in a
// mountinfo file.
func nsfsMounts(mountinfo string) ([]string, error) {
	f, err := os.Open(mountinfo)
	if err != nil {
		return nil, errors.Wrap(err, "looking for nsfs mounts")
	}
	defer f.Close()
	var mounts []string
	scanner := bufio.NewScanner(f)
	scanner.Buffer(make([]byte, 64*1024), 1024*1024)
	for scanner.Scan() {
		// "36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - fuse.nsfs nsfs rw"
		fields := strings.Fields(scanner.Text())
		sep := -1
		for i, field := range fields {
			if field == "-" {
				sep = i
				break
			}
		}
		if sep < 5 || sep+1 >= len(fields) || fields[sep+1] != FSType {
			continue
		}
		mounts = append(mounts, unescapeOctal(fields[4]))
	}
	return mounts, errors.Wrap(scanner.Err(), "reading "+mountinfo)
}

// unescapeOctal undoes mountinfo's \040-style escaping of spaces, tabs,
// newlines and backslashes.
func unescapeOctal(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			o := s[i+1 : i+4]
			if len(o) == 3 && o[0] >= '0' && o[0] <= '3' && o[1] >= '0' && o[1] <= '7' && o[2] >= '0' && o[2] <= '7' {
				b.WriteByte((o[0]-'0')<<6 | (o[1]-'0')<<3 | (o[2] - '0'))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
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

// namespaceName is containerd's rule for a namespace name (at most 76
// characters besides).
var namespaceName = regexp.MustCompile(`^[A-Za-z0-9]+(?:[._-](?:[A-Za-z0-9]+))*$`)

// Check refuses a name that is no namespace name before it becomes a path
// (`-n ../..` must not leave ns/), as containerd checks it on every request.
func (n Namespace) Check() error {
	if len(n.Name) > 76 || !namespaceName.MatchString(n.Name) {
		return invalidNamespaceName(n.Name)
	}
	return nil
}
