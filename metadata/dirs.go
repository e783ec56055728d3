package metadata

// An image ref "docker.io/library/redis:latest" shows as the file
// redis:latest in directory docker.io/library of images/. A directory
// exists while a ref lies below it (implicit) or from mkdir until rmdir
// (explicit); both kinds look the same.

// Entry is one name in an images/ directory.
type Entry struct {
	Name  string // the last component
	Path  string // the whole path below images/, "" for images/ itself
	IsDir bool
	Image *Image // set for files
}

// LookupImagePath resolves path below images/ ("" is images/ itself) to an
// image or a directory (ErrNotFound).
func (db *DB) LookupImagePath(ns, path string) (Entry, error) { panic("not implemented") }

// ReadImageDir lists directory dir ("" for images/) from one snapshot,
// sorted by name (ErrNotFound, ErrNotDirectory).
func (db *DB) ReadImageDir(ns, dir string) ([]Entry, error) { panic("not implemented") }

// MakeImageDir records directory dir (ErrExists when dir is an image or a
// directory already; ErrNotFound when its parent is not a directory;
// ErrNotDirectory when a component is an image).
func (db *DB) MakeImageDir(ns, dir string) error { panic("not implemented") }

// RemoveImageDir removes directory dir: ErrNotEmpty while anything lies
// below it, ErrNotDirectory for an image, ErrNotFound. dir "" (images/
// itself) succeeds when the namespace has no images and no directories,
// and images/ stays.
func (db *DB) RemoveImageDir(ns, dir string) error { panic("not implemented") }
