package blobs

import (
	"os"
	"path"
	"strconv"

	"github.com/opencontainers/go-digest"

	"github.com/pkg/errors"
	"golang.org/x/sys/unix"
)

// Quarantine moves the entry (as List reported a stray; a symlink is
// moved itself, never followed) to <root>/quarantine/, under a name not
// yet taken there, and returns its new path relative to the root. quarantine/ itself must be a directory, not
// a link to one (ErrUnsafe).
func (s *Store) Quarantine(e Entry) (string, error) {
	dir, name := path.Split(e.Path)
	var from *os.File
	switch dir {
	case blobDirName + "/":
		from = s.blobDir
	case ingestDirName + "/":
		from = s.ingestDir
	}
	if from == nil || name != e.Name || checkIngestName(name) != nil {
		return "", errors.WithMessagef(os.ErrInvalid, "quarantine %q: not an entry of blobs/sha256 or ingest", e.Path)
	}
	var qfd int
	err := withFD(s.rootDir, func(root int) (err error) {
		qfd, err = s.openDir(root, quarantineDir, quarantineDir)
		return err
	})
	if err != nil {
		return "", errors.WithMessage(err, "quarantine")
	}
	q := os.NewFile(uintptr(qfd), s.display(quarantineDir))
	defer q.Close()
	for i := 0; ; i++ {
		to := name
		if i > 0 {
			to = name + "." + strconv.Itoa(i)
		}
		err := renameat(from, name, q, to, unix.RENAME_NOREPLACE)
		if err == unix.EEXIST {
			continue
		}
		if err != nil {
			return "", errors.WithMessagef(&os.LinkError{Op: "rename", Old: s.display(e.Path), New: s.display(quarantineDir + "/" + to), Err: err}, "quarantine %s", e.Path)
		}
		return quarantineDir + "/" + to, syncDir(q)
	}
}

// QuarantineBlob is Quarantine of blob d's file in blobs/sha256.
func (s *Store) QuarantineBlob(d digest.Digest) (string, error) {
	if err := ValidateDigest(d); err != nil {
		return "", err
	}
	return s.Quarantine(Entry{Path: RelPath(d), Name: d.Encoded()})
}
