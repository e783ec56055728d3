package metadata

import (
	"bytes"
	"slices"
	"strings"

	"github.com/nsfs/nsfs/names"
	"github.com/pkg/errors"
	bolt "go.etcd.io/bbolt"
)

// An image ref "docker.io/library/redis:latest" shows as the file
// redis:latest in directory docker.io/library of images/. A directory
// exists while a ref lies below it (implicit) or from mkdir until rmdir
// (explicit); both kinds look the same. Removing or renaming away the last
// ref of a directory makes the directory explicit, as removing a file
// leaves its directory on any filesystem: `rm -r images/docker.io` removes
// the files and then rmdirs each directory, which must still be there.
//
// Refs are keys of one bucket, sorted bytewise, so everything below
// directory "a/b" is the key range starting at "a/b/": listing a directory
// seeks there and, for a key that lies deeper ("a/b/sub/x"), emits "sub"
// once and seeks past the whole range "a/b/sub/" (to "a/b/sub0", '0' being
// '/'+1). A listing costs what the directory holds, not what the namespace
// holds.

// Entry is one name in an images/ directory.
type Entry struct {
	Name  string // the last component
	Path  string // the whole path below images/, "" for images/ itself
	IsDir bool
	// Image is set for files. Its Labels are nil, from ReadDir and Lookup
	// alike: lookups and listings are the hot paths of the filesystem and
	// never show labels (LabelStore.All reads them).
	Image *Image
}

// isDir reports whether path is a directory of images/: "" (images/
// itself), an explicit directory, or a proper prefix of a ref or of an
// explicit directory.
func isDir(nsb *bolt.Bucket, path string) bool {
	if path == "" {
		return true
	}
	dirs := nsSub(nsb, bucketDirs)
	if hasKey(dirs, []byte(path)) {
		return true
	}
	prefix := []byte(path + "/")
	return hasPrefixKey(nsSub(nsb, bucketImages), prefix) || hasPrefixKey(dirs, prefix)
}

// baseName is the last component of a path below images/.
func baseName(path string) string { return path[strings.LastIndexByte(path, '/')+1:] }

// parentDir is the directory holding path ("" for a top-level name).
func parentDir(path string) string {
	if i := strings.LastIndexByte(path, '/'); i >= 0 {
		return path[:i]
	}
	return ""
}

// keepParentDir records the directory holding path (a ref or a directory)
// as explicit, so that it outlives its last entry; its own parents are
// prefixes of it, so they stay too.
func keepParentDir(nsb *bolt.Bucket, path string) error {
	parent := parentDir(path)
	if parent == "" {
		return nil
	}
	dirs, err := nsData(nsb).CreateBucketIfNotExists(bucketDirs)
	if err != nil {
		return err
	}
	return dirs.Put([]byte(parent), member)
}

func (db imageStore) Lookup(ns, path string) (Entry, error) {
	if path != "" {
		if err := names.ValidateRef(path); err != nil {
			return Entry{}, err
		}
	}
	var e Entry
	err := db.bolt.View(func(tx *bolt.Tx) error {
		nsb, err := namespaceBucket(tx, ns)
		if err != nil {
			return err
		}
		if path == "" {
			e = Entry{IsDir: true}
			return nil
		}
		// One read of the record answers both "is it an image" and "which".
		if v := nsSub(nsb, bucketImages).Get([]byte(path)); v != nil {
			rec, err := decodeImageRecord(v)
			if err != nil {
				return errors.WithMessagef(err, "image %q in namespace %q", shorten(path), ns)
			}
			img := toImage(nsb, ns, path, rec, false)
			e = Entry{Name: baseName(path), Path: path, Image: &img}
			return nil
		}
		if isDir(nsb, path) {
			e = Entry{Name: baseName(path), Path: path, IsDir: true}
			return nil
		}
		return pathError(nsb, ns, path)
	})
	return e, err
}

// pathError explains why path is neither an image nor a directory.
func pathError(nsb *bolt.Bucket, ns, path string) error {
	if parent, ok := imageAbove(nsb, path); ok {
		return errors.WithMessagef(ErrNotDirectory, "images/%s: %q is an image, not a directory, in namespace %q", shorten(path), shorten(parent), ns)
	}
	return errors.WithMessagef(ErrNotFound, "images/%s not found in namespace %q", shorten(path), ns)
}

// dirPrefix is the key prefix of what directory dir ("" for images/) of
// namespace ns (nsb) holds: ErrNotDirectory for an image, ErrNotFound for
// no directory.
func dirPrefix(nsb *bolt.Bucket, ns, dir string) ([]byte, error) {
	if dir == "" {
		return nil, nil
	}
	if isImage(nsb, dir) {
		return nil, errors.WithMessagef(ErrNotDirectory, "images/%s is an image, not a directory, in namespace %q", shorten(dir), ns)
	}
	if !isDir(nsb, dir) {
		return nil, pathError(nsb, ns, dir)
	}
	return []byte(dir + "/"), nil
}

// walkBelow visits the names directly below prefix in bucket b: leaf keys
// go to leaf, deeper keys become one directory each (subdir, once per
// run of keys below it: the cursor seeks past them).
func walkBelow(b *bolt.Bucket, prefix []byte, leaf func(key, value []byte) error, subdir func(name string)) error {
	c := b.Cursor()
	k, v := c.Seek(prefix)
	for k != nil && bytes.HasPrefix(k, prefix) {
		rest := k[len(prefix):]
		i := bytes.IndexByte(rest, '/')
		if i < 0 {
			if err := leaf(k, v); err != nil {
				return err
			}
			k, v = c.Next()
			continue
		}
		subdir(string(rest[:i]))
		past := make([]byte, 0, len(prefix)+i+1)
		past = append(append(append(past, prefix...), rest[:i]...), '/'+1)
		k, v = c.Seek(past)
	}
	return nil
}

func (db imageStore) ReadDir(ns, dir string) ([]Entry, error) {
	if dir != "" {
		if err := names.ValidateRef(dir); err != nil {
			return nil, err
		}
	}
	var entries []Entry
	err := db.bolt.View(func(tx *bolt.Tx) error {
		nsb, err := namespaceBucket(tx, ns)
		if err != nil {
			return err
		}
		images, err := subBucket(nsData(nsb), bucketImages)
		if err != nil {
			return err
		}
		dirs, err := subBucket(nsData(nsb), bucketDirs)
		if err != nil {
			return err
		}
		prefix, err := dirPrefix(nsb, ns, dir)
		if err != nil {
			return err
		}

		seenDir := map[string]bool{}
		addDir := func(name string) {
			if !seenDir[name] {
				seenDir[name] = true
				entries = append(entries, Entry{Name: name, Path: string(prefix) + name, IsDir: true})
			}
		}
		walk := func(b *bolt.Bucket, leaf func(key, value []byte) error) error {
			return walkBelow(b, prefix, leaf, addDir)
		}
		// Images are allocated in chunks: one allocation per entry is
		// what a listing of 10,000 refs would otherwise spend its time on.
		var chunk []Image
		err = walk(images, func(key, value []byte) error {
			rec, err := decodeImageRecord(value)
			if err != nil {
				return errors.WithMessagef(err, "image %q in namespace %q", key, ns)
			}
			if len(chunk) == cap(chunk) {
				chunk = make([]Image, 0, 256)
			}
			path := string(key)
			chunk = append(chunk, toImage(nsb, ns, path, rec, false))
			entries = append(entries, Entry{Name: path[len(prefix):], Path: path, Image: &chunk[len(chunk)-1]})
			return nil
		})
		if err != nil {
			return err
		}
		return walk(dirs, func(key, _ []byte) error {
			addDir(string(key[len(prefix):]))
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	// Key order is name order except around a directory ("a/x" sorts after
	// "a-b", "a" before it) and for explicit directories, added last.
	byName := func(a, b Entry) int { return strings.Compare(a.Name, b.Name) }
	if !slices.IsSortedFunc(entries, byName) {
		slices.SortFunc(entries, byName)
	}
	return entries, nil
}

func (db imageStore) MakeDir(ns, dir string) error {
	if dir != "" {
		if err := names.ValidateRef(dir); err != nil {
			return err
		}
	}
	return db.batch(func(tx *bolt.Tx) error {
		nsb, err := namespaceBucket(tx, ns)
		if err != nil {
			return err
		}
		if dir == "" {
			return errors.WithMessagef(ErrExists, "images/ of namespace %q exists", ns)
		}
		if parent, ok := imageAbove(nsb, dir); ok {
			return errors.WithMessagef(ErrNotDirectory, "images/%s: %q is an image, not a directory, in namespace %q", shorten(dir), shorten(parent), ns)
		}
		if isImage(nsb, dir) {
			return errors.WithMessagef(ErrExists, "images/%s is an image in namespace %q", shorten(dir), ns)
		}
		if isDir(nsb, dir) {
			return errors.WithMessagef(ErrExists, "directory images/%s already exists in namespace %q", shorten(dir), ns)
		}
		if parent := parentDir(dir); !isDir(nsb, parent) {
			return errors.WithMessagef(ErrNotFound, "images/%s: parent directory %q not found in namespace %q", shorten(dir), shorten(parent), ns)
		}
		if err := imageDirAdding(nsb, dir, now()); err != nil {
			return err
		}
		dirs, err := nsData(nsb).CreateBucketIfNotExists(bucketDirs)
		if err != nil {
			return err
		}
		return dirs.Put([]byte(dir), member)
	})
}

func (db imageStore) RemoveDir(ns, dir string) error {
	if dir != "" {
		if err := names.ValidateRef(dir); err != nil {
			return err
		}
	}
	return db.updateFreeing(func(tx *bolt.Tx) error {
		nsb, err := namespaceBucket(tx, ns)
		if err != nil {
			return err
		}
		images := nsSub(nsb, bucketImages)
		dirs := nsSub(nsb, bucketDirs)
		if dir == "" {
			if !isEmptyBucket(images) || !isEmptyBucket(dirs) {
				return errors.WithMessagef(ErrNotEmpty, "images/ of namespace %q is not empty", ns)
			}
			return nil
		}
		if isImage(nsb, dir) {
			return errors.WithMessagef(ErrNotDirectory, "images/%s is an image, not a directory, in namespace %q", shorten(dir), ns)
		}
		prefix := []byte(dir + "/")
		if hasPrefixKey(images, prefix) || hasPrefixKey(dirs, prefix) {
			return errors.WithMessagef(ErrNotEmpty, "directory images/%s in namespace %q is not empty", shorten(dir), ns)
		}
		if !hasKey(dirs, []byte(dir)) {
			return pathError(nsb, ns, dir)
		}
		if err := dirs.Delete([]byte(dir)); err != nil {
			return err
		}
		if err := imageDirRemoved(nsb, dir, now()); err != nil {
			return err
		}
		return keepParentDir(nsb, dir)
	})
}
