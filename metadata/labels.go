package metadata

import "github.com/opencontainers/go-digest"

// MaxLabelSize bounds len(key)+len(value) of one label (containerd's rule).
const MaxLabelSize = 4096

// Object names what a label belongs to: a namespace (Image and Blob empty),
// an image of it (Image set), or a blob it can see (Blob set). Content
// labels are per namespace, as in containerd.
type Object struct {
	Namespace string
	Image     string
	Blob      digest.Digest
}

// ValidateLabel checks one label: key non-empty (ErrInvalidArgument),
// len(key)+len(value) <= MaxLabelSize (ErrLabelTooLarge).
func ValidateLabel(key, value string) error { panic("not implemented") }

// Labels returns the object's labels (ErrNotFound when the object is gone).
func (db *DB) Labels(o Object) (map[string]string, error) { panic("not implemented") }

// SetLabel sets key=value on o. An empty value removes the label
// (containerd has no empty labels). check, if not nil, is called inside the
// transaction with whether the label exists now, and its error aborts the
// update (setxattr's XATTR_CREATE / XATTR_REPLACE).
func (db *DB) SetLabel(o Object, key, value string, check func(exists bool) error) error {
	panic("not implemented")
}

// RemoveLabel removes key from o (ErrNoLabel when absent).
func (db *DB) RemoveLabel(o Object, key string) error { panic("not implemented") }
