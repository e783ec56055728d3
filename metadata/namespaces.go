package metadata

import "time"

// Namespace is a tenant: a set of images, held blobs and labels.
type Namespace struct {
	Name      string
	ID        uint64 // never reused; fs/ uses it as the inode number
	Labels    map[string]string
	CreatedAt time.Time
	UpdatedAt time.Time
}

// ValidateNamespace checks a namespace name against containerd's rule:
// ^[A-Za-z0-9]+(?:[._-](?:[A-Za-z0-9]+))*$, at most 76 bytes
// (ErrInvalidArgument; over 255 bytes ErrNameTooLong).
func ValidateNamespace(name string) error { panic("not implemented") }

// CreateNamespace creates a namespace (ErrExists, ErrInvalidArgument).
func (db *DB) CreateNamespace(name string, labels map[string]string) (Namespace, error) {
	panic("not implemented")
}

// GetNamespace returns one namespace (ErrNotFound).
func (db *DB) GetNamespace(name string) (Namespace, error) { panic("not implemented") }

// ListNamespaces returns all namespaces sorted by name.
func (db *DB) ListNamespaces() ([]Namespace, error) { panic("not implemented") }

// DeleteNamespace deletes an empty namespace. While it has images or blobs
// it fails with ErrNotEmpty: `namespace "default" must be empty, but it
// still has images, blobs`. Empty ref-prefix directories go with it.
func (db *DB) DeleteNamespace(name string) error { panic("not implemented") }
