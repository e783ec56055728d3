package client

import (
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"github.com/nsfs/nsfs/names"
	"github.com/nsfs/nsfs/xattr"
	"github.com/pkg/errors"
	"golang.org/x/sys/unix"
)

// NamespaceInfo is a namespace as `nsfs namespaces ls` shows it.
type NamespaceInfo struct {
	Name   string
	Labels map[string]string
	// LabelsErr, when not nil, says why Labels could not be read: labels
	// over the filesystem's limit, written by an nsfs from before it, make
	// listxattr fail with E2BIG. The other namespaces are still listed.
	LabelsErr error
	// LabelsDenied: the caller may not read the labels (the namespace's
	// mode does not let it).
	LabelsDenied bool
	Tenancy
}

// Namespaces lists the namespaces of m, sorted by name, with their labels
// (`ls ns` and `getfattr -d ns/<name>`).
func (m Mount) Namespaces() ([]NamespaceInfo, error) {
	entries, err := os.ReadDir(filepath.Join(m.Dir, "ns"))
	if err != nil {
		return nil, errors.Wrap(err, "listing namespaces")
	}
	var out []NamespaceInfo
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		labels, err := readLabels(m.NamespaceDir(e.Name()))
		if errors.Is(err, fs.ErrNotExist) {
			continue // removed since the listing
		}
		if errors.Is(err, unix.E2BIG) {
			out = append(out, NamespaceInfo{Name: e.Name(), Tenancy: m.Tenancy(e.Name()), LabelsErr: errors.Errorf(
				"namespace %q: its labels are over %d bytes and cannot be listed; remove some (setfattr -x, nsfs namespaces label NAME KEY=)", e.Name(), names.MaxLabelsSize)})
			continue
		}
		if errors.Is(err, unix.EACCES) {
			out = append(out, NamespaceInfo{Name: e.Name(), LabelsDenied: true, Tenancy: m.Tenancy(e.Name())})
			continue
		}
		if err != nil {
			return nil, errors.Wrapf(err, "namespace %q", e.Name())
		}
		out = append(out, NamespaceInfo{Name: e.Name(), Labels: labels, Tenancy: m.Tenancy(e.Name())})
	}
	return out, nil
}

// CreateNamespace makes namespace name with labels (`mkdir ns/<name>`,
// then `setfattr` for each label), as `ctr namespaces create` does. An
// existing namespace is ErrAlreadyExists. Labels are checked before the
// mkdir, and a label the filesystem still refuses removes the namespace
// again, so a refusal leaves nothing behind.
func (m Mount) CreateNamespace(name string, labels map[string]string) error {
	n := m.Namespace(name)
	if err := n.Check(); err != nil {
		return err
	}
	if err := checkLabels(labels); err != nil {
		return errors.Wrapf(err, "namespace %q", name)
	}
	if err := checkLabelsFit(name, nil, labels); err != nil {
		return err
	}
	if err := os.Mkdir(n.Dir(), 0o755); err != nil {
		return namespaceError(name, err)
	}
	if err := n.SetLabels(labels); err != nil {
		_ = unix.Rmdir(n.Dir())
		return err
	}
	return nil
}

// RemoveNamespace deletes namespace name (`rmdir ns/<name>`). One that
// still has images or blobs is refused with containerd's sentence,
// `namespace "foo" must be empty, but it still has images, blobs`; a
// missing one is ErrNotFound.
func (m Mount) RemoveNamespace(name string) error {
	n := m.Namespace(name)
	if err := n.Check(); err != nil {
		return err
	}
	err := unix.Rmdir(n.Dir())
	if err == nil {
		return nil
	}
	if err != syscall.ENOTEMPTY {
		return namespaceError(name, err)
	}
	// The filesystem says only ENOTEMPTY; what it still has is what a
	// user would find with ls.
	var has []string
	if hasImages, err := anyFileBelow(n.ImagesDir()); err != nil {
		return errors.Wrapf(err, "namespace %q", name)
	} else if hasImages {
		has = append(has, "images")
	}
	blobs, err := os.ReadDir(n.BlobsDir())
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return errors.Wrapf(err, "namespace %q", name)
	}
	if len(blobs) > 0 {
		has = append(has, "blobs")
	}
	if len(has) == 0 {
		// Emptied between the rmdir and the listing.
		return withKind(ErrNotEmpty, "namespace %q must be empty", name)
	}
	return withKind(ErrNotEmpty, "namespace %q must be empty, but it still has %s", name, strings.Join(has, ", "))
}

// anyFileBelow tells whether a regular file (an image) lies anywhere
// below dir; empty ref-prefix directories do not count.
func anyFileBelow(dir string) (bool, error) {
	found := false
	err := filepath.WalkDir(dir, func(_ string, e fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if e.Type().IsRegular() {
			found = true
			return filepath.SkipAll
		}
		return nil
	})
	return found, err
}

// SetLabels sets the labels of namespace n, as `ctr namespaces label`
// does: an empty value removes the label (`setfattr -x`; an absent one is
// no error). The namespace must exist. Labels that would take the
// namespace's over names.MaxLabelsSize are refused before any is set.
func (n Namespace) SetLabels(labels map[string]string) error {
	if err := n.Check(); err != nil {
		return err
	}
	if err := checkLabels(labels); err != nil {
		return errors.Wrapf(err, "namespace %q", n.Name)
	}
	if len(labels) == 0 {
		// Nothing to set, but a typo in the name should still show.
		if _, err := os.Stat(n.Dir()); err != nil {
			return namespaceError(n.Name, err)
		}
		return nil
	}
	// Labels over the limit, from before it, make listxattr fail with
	// E2BIG: then only the filesystem's own check applies, which lets
	// removals through.
	current, err := readLabels(n.Dir())
	if err != nil && !errors.Is(err, unix.E2BIG) {
		return namespaceError(n.Name, err)
	}
	if err == nil {
		if err := checkLabelsFit(n.Name, current, labels); err != nil {
			return err
		}
	}
	for _, k := range sortedKeys(labels) {
		if err := setLabel(n.Dir(), k, labels[k]); err != nil {
			return namespaceError(n.Name, err)
		}
	}
	return nil
}

// labelPrefix is the xattr namespace that carries labels: label k is the
// xattr user.k.
const labelPrefix = xattr.UserPrefix

// checkLabels refuses what the filesystem would refuse (the store's rule,
// names.LabelProblem, and what an xattr cannot carry), with a message that
// names the label, before anything is changed.
func checkLabels(labels map[string]string) error {
	for _, k := range sortedKeys(labels) {
		v := labels[k]
		switch problem := names.LabelProblem(k, v); {
		case k == "":
			return withKind(ErrInvalid, "label %q: the key is empty", k+"="+v)
		case problem != "":
			return withKind(ErrInvalid, "label %q: %s", k, problem)
		case len(labelPrefix)+len(k) > xattr.MaxNameLen:
			return withKind(ErrInvalid, "label %q: the key is longer than %d bytes", k, xattr.MaxNameLen-len(labelPrefix))
		case strings.ContainsRune(k, 0) || strings.ContainsRune(v, 0):
			return withKind(ErrInvalid, "label %q: a NUL byte", k)
		}
	}
	return nil
}

// checkLabelsFit refuses changes (an empty value removes) that would take
// the labels of namespace name, now current, over the filesystem's limit
// and make them larger, before anything is changed. The filesystem checks
// again as it sets each label (ENOSPC).
func checkLabelsFit(name string, current, changes map[string]string) error {
	after := make(map[string]string, len(current)+len(changes))
	for k, v := range current {
		after[k] = v
	}
	for k, v := range changes {
		after[k] = v
	}
	before, total := names.LabelsSize(current), names.LabelsSize(after)
	if problem := names.LabelsSizeProblem(total); problem != "" && total > before {
		return withKind(ErrInvalid, "namespace %q: %s", name, problem)
	}
	return nil
}

// setLabel sets label k of the file or directory path to v; an empty v
// removes it, and removing an absent label succeeds.
func setLabel(path, k, v string) error {
	if v == "" {
		err := unix.Removexattr(path, labelPrefix+k)
		if err == unix.ENODATA {
			return nil
		}
		return labelError(path, k, err)
	}
	return labelError(path, k, unix.Setxattr(path, labelPrefix+k, []byte(v), 0))
}

// labelError keeps the errno (callers map ENOENT to a missing object)
// and names the label otherwise.
func labelError(path, k string, err error) error {
	switch err {
	case nil:
		return nil
	case unix.ENOENT:
		return &fs.PathError{Op: "setxattr", Path: path, Err: err}
	case unix.E2BIG, unix.EINVAL, unix.ERANGE:
		return withKind(ErrInvalid, "label %q: %v", k, err)
	case unix.ENOSPC:
		return withKind(ErrInvalid, "label %q: the labels of %s are full (%s)", k, path, names.LabelsFull())
	}
	return errors.Wrapf(err, "label %q", k)
}

// readLabels reads every label (user.* xattr) of path. ENOENT comes back
// as fs.ErrNotExist.
func readLabels(path string) (map[string]string, error) {
	names, err := listXattrs(path)
	if err != nil {
		return nil, err
	}
	labels := map[string]string{}
	for _, name := range names {
		k, ok := strings.CutPrefix(name, labelPrefix)
		if !ok {
			continue
		}
		v, err := getXattr(path, name)
		if err == unix.ENODATA {
			continue // removed since the listing
		}
		if err != nil {
			return nil, &fs.PathError{Op: "getxattr " + name, Path: path, Err: err}
		}
		labels[k] = v
	}
	return labels, nil
}

// listXattrs is listxattr(2) of path, grown while the list grows (ERANGE).
func listXattrs(path string) ([]string, error) {
	for {
		size, err := unix.Llistxattr(path, nil)
		if err != nil {
			return nil, &fs.PathError{Op: "listxattr", Path: path, Err: err}
		}
		if size == 0 {
			return nil, nil
		}
		buf := make([]byte, size)
		n, err := unix.Llistxattr(path, buf)
		if err == unix.ERANGE {
			continue
		}
		if err != nil {
			return nil, &fs.PathError{Op: "listxattr", Path: path, Err: err}
		}
		var names []string
		for _, name := range strings.Split(string(buf[:n]), "\x00") {
			if name != "" {
				names = append(names, name)
			}
		}
		return names, nil
	}
}

// getXattr is getxattr(2) of one name, grown while the value grows.
func getXattr(path, name string) (string, error) {
	for {
		size, err := unix.Lgetxattr(path, name, nil)
		if err != nil {
			return "", err
		}
		buf := make([]byte, size)
		n, err := unix.Lgetxattr(path, name, buf)
		if err == unix.ERANGE {
			continue
		}
		if err != nil {
			return "", err
		}
		return string(buf[:n]), nil
	}
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
