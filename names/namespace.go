package names

import (
	"regexp"

	"github.com/nsfs/nsfs/errdefs"
	"github.com/pkg/errors"
)

// NamespacePattern is containerd's rule for a namespace name
// (identifiers.Validate): alphanumeric runs joined by single '.', '_' or
// '-'.
const NamespacePattern = `^[A-Za-z0-9]+(?:[._-](?:[A-Za-z0-9]+))*$`

// MaxNamespaceLen is containerd's limit on a namespace name, in bytes.
const MaxNamespaceLen = 76

var namespaceRe = regexp.MustCompile(NamespacePattern)

// ValidateNamespace checks a namespace name against containerd's rule:
// NamespacePattern, at most MaxNamespaceLen bytes (ErrInvalidArgument;
// over MaxNameLen bytes ErrNameTooLong, as for any directory entry).
func ValidateNamespace(name string) error {
	switch {
	case len(name) > MaxNameLen:
		return errors.WithMessagef(errdefs.ErrNameTooLong, "namespace name %q: %d bytes, over the %d-byte limit", Shorten(name), len(name), MaxNamespaceLen)
	case name == "":
		return errors.WithMessage(errdefs.ErrInvalidArgument, "namespace name is empty")
	case len(name) > MaxNamespaceLen:
		return errors.WithMessagef(errdefs.ErrInvalidArgument, "namespace name %q: %d bytes, over the %d-byte limit", name, len(name), MaxNamespaceLen)
	case !namespaceRe.MatchString(name):
		return errors.WithMessagef(errdefs.ErrInvalidArgument, "namespace name %q: must match %s", name, namespaceRe)
	}
	return nil
}
