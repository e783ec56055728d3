package blobs

import (
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/pkg/errors"
	"golang.org/x/sys/unix"
)

// Entry is one directory entry of blobs/sha256 or ingest/, of any type.
type Entry struct {
	Path    string // relative to the root: "blobs/sha256/<name>" or "ingest/<name>"
	Name    string
	Mode    os.FileMode // lstat's: a symlink is a symlink
	Size    int64
	ModTime time.Time
}

// WalkBlobEntries calls fn for every entry of blobs/sha256, whatever its
// name or type.
func (s *Store) WalkBlobEntries(fn func(Entry) error) error {
	return walkEntries(s.blobDir, "blobs/sha256/", fn)
}

// WalkIngestEntries calls fn for every entry of ingest/, whatever its type.
func (s *Store) WalkIngestEntries(fn func(Entry) error) error {
	return walkEntries(s.ingestDir, "ingest/", fn)
}

func walkEntries(dir, prefix string, fn func(Entry) error) error {
	d, err := os.Open(dir)
	if err != nil {
		return errors.WithMessagef(err, "walk %s", dir)
	}
	defer d.Close()
	for {
		names, err := d.Readdirnames(walkBatch)
		for _, name := range names {
			fi, lerr := os.Lstat(filepath.Join(dir, name))
			if errors.Is(lerr, os.ErrNotExist) {
				continue
			}
			if lerr != nil {
				return errors.WithMessagef(lerr, "walk %s", dir)
			}
			if err := fn(Entry{Path: prefix + name, Name: name, Mode: fi.Mode(), Size: fi.Size(), ModTime: fi.ModTime()}); err != nil {
				return err
			}
		}
		if err == io.EOF || len(names) == 0 {
			return nil
		}
		if err != nil {
			return errors.WithMessagef(err, "walk %s", dir)
		}
	}
}

// quarantineDir is where a repair moves what it must not delete and must
// not serve: corrupt blob files, links and other strays.
const quarantineDir = "quarantine"

// Quarantine moves the entry (as WalkBlobEntries or WalkIngestEntries
// named it; a symlink is moved itself, never followed) to
// <root>/quarantine/, under a name not yet taken there, and returns its new
// path relative to the root.
func (s *Store) Quarantine(e Entry) (string, error) {
	dir := filepath.Dir(e.Path)
	if (dir != "blobs/sha256" && dir != "ingest") || filepath.Base(e.Path) != e.Path[len(dir)+1:] {
		return "", errors.WithMessagef(os.ErrInvalid, "quarantine %q: not an entry of blobs/sha256 or ingest", e.Path)
	}
	qdir := filepath.Join(s.root, quarantineDir)
	if err := os.MkdirAll(qdir, dirMode); err != nil {
		return "", errors.WithMessage(err, "quarantine")
	}
	base := filepath.Base(e.Path)
	for i := 0; ; i++ {
		name := base
		if i > 0 {
			name = base + "." + strconv.Itoa(i)
		}
		to := filepath.Join(quarantineDir, name)
		err := unix.Renameat2(unix.AT_FDCWD, filepath.Join(s.root, e.Path), unix.AT_FDCWD, filepath.Join(s.root, to), unix.RENAME_NOREPLACE)
		if errors.Is(err, unix.EEXIST) {
			continue
		}
		if err != nil {
			return "", errors.WithMessagef(err, "quarantine %s", e.Path)
		}
		return to, syncDir(qdir)
	}
}
