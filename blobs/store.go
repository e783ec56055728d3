// Package blobs is the shared content-addressed directory of an nsfs store.
// It knows nothing of namespaces: which namespace holds which blob is
// metadata's business. On disk:
//
//	<root>/blobs/sha256/<hex>   committed blobs, mode 0444, never modified
//	<root>/ingest/<hex>-<rand>  ingests in progress (cleaned up by gc)
//
// A blob becomes visible only by an atomic rename after its bytes were
// verified against the expected digest and fsynced, so readers never see a
// partial blob. The directory is fsynced after the rename, so a blob whose
// Commit returned survives a power cut before the metadata naming it commits.
package blobs

import (
	// go-digest hashes through crypto.Hash, which needs the implementation
	// linked in; without it digest.SHA256 is "not available" and panics.
	_ "crypto/sha256"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/pkg/errors"
)

var (
	// ErrDigestMismatch: the bytes written do not hash to the expected digest.
	ErrDigestMismatch = errors.New("digest mismatch")
	// ErrNonSequentialWrite: an ingest is hashed while written, so it must
	// be written from offset 0 onwards without gaps or rewinds.
	ErrNonSequentialWrite = errors.New("blobs are written sequentially")
	// ErrUnsupportedDigest: only sha256 digests are stored.
	ErrUnsupportedDigest = errors.New("unsupported digest algorithm")
)

// Info describes a committed blob.
type Info struct {
	Digest  digest.Digest
	Size    int64
	ModTime time.Time
}

// Store is the shared blob directory.
type Store struct {
	root      string
	blobDir   string // <root>/blobs/sha256
	ingestDir string // <root>/ingest
}

// dirMode is the mode of the directories the store creates.
const dirMode = 0o755

// blobMode is the mode of a committed blob: its bytes never change.
const blobMode = 0o444

// walkBatch bounds how many directory entries Walk and WalkIngests hold at
// once, so that walking a store of millions of blobs stays small in memory.
const walkBatch = 1024

// invalidDigestName is the file name Path gives for an invalid digest. It
// is not 64 hex digits, so it can never be a committed blob, and it has no
// '/', so the path stays inside the blob directory.
const invalidDigestName = "invalid-digest"

// Open creates (if needed) and opens the blob directory below root.
func Open(root string) (*Store, error) {
	s := &Store{
		root:      root,
		blobDir:   filepath.Join(root, "blobs", string(digest.SHA256)),
		ingestDir: filepath.Join(root, "ingest"),
	}
	for _, dir := range []string{s.blobDir, s.ingestDir} {
		if err := os.MkdirAll(dir, dirMode); err != nil {
			return nil, errors.WithMessagef(err, "blob store %s", root)
		}
	}
	// The directories we may just have created must survive a power cut
	// as much as the blobs renamed into them.
	for _, dir := range []string{filepath.Join(root, "blobs"), root} {
		if err := syncDir(dir); err != nil {
			return nil, errors.WithMessagef(err, "blob store %s", root)
		}
	}
	return s, nil
}

// Root is the directory the store was opened at.
func (s *Store) Root() string { return s.root }

// ValidateDigest reports whether d can name a blob of this store: nil for
// "sha256:" and 64 lowercase hex digits, ErrUnsupportedDigest (wrapped) for
// another algorithm, and a wrapped go-digest error for a malformed one.
//
// It is the one definition of the format (metadata wraps it), and it runs
// on every blob lookup: the check is a loop over the bytes; only a refusal
// asks go-digest for its reason.
func ValidateDigest(d digest.Digest) error {
	const prefix = string(digest.SHA256) + ":"
	if s := string(d); len(s) == len(prefix)+64 && s[:len(prefix)] == prefix && isLowerHex(s[len(prefix):]) {
		return nil
	}
	return invalidDigest(d)
}

// isLowerHex reports whether s is made of lowercase hex digits only.
func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// invalidDigest explains why ValidateDigest refused d.
func invalidDigest(d digest.Digest) error {
	if err := d.Validate(); err != nil {
		if errors.Is(err, digest.ErrDigestUnsupported) {
			return errors.WithMessagef(ErrUnsupportedDigest, "digest %q: only sha256 is stored", string(d))
		}
		return errors.WithMessagef(err, "digest %q", string(d))
	}
	// Validate accepts sha384 and sha512 too, whenever some package links
	// those hashes in.
	if d.Algorithm() != digest.SHA256 {
		return errors.WithMessagef(ErrUnsupportedDigest, "digest %q: only sha256 is stored", string(d))
	}
	// go-digest accepts what the loop refused: its rule is not ours.
	return errors.WithMessagef(digest.ErrDigestInvalidFormat, "digest %q", string(d))
}

// Path is where the committed blob d lives (whether or not it exists). For
// an invalid digest it is a name inside the blob directory that no blob
// ever has, so the path never escapes the directory.
func (s *Store) Path(d digest.Digest) string {
	if ValidateDigest(d) != nil {
		return filepath.Join(s.blobDir, invalidDigestName)
	}
	return filepath.Join(s.blobDir, d.Encoded())
}

// Stat returns the committed blob's info, or an error satisfying
// errors.Is(err, os.ErrNotExist).
func (s *Store) Stat(d digest.Digest) (Info, error) {
	if err := ValidateDigest(d); err != nil {
		return Info{}, err
	}
	fi, err := os.Stat(s.Path(d))
	if err != nil {
		return Info{}, errors.WithMessagef(err, "blob %s", d)
	}
	return Info{Digest: d, Size: fi.Size(), ModTime: fi.ModTime()}, nil
}

// Open opens the committed blob for reading.
func (s *Store) Open(d digest.Digest) (*os.File, error) {
	if err := ValidateDigest(d); err != nil {
		return nil, err
	}
	f, err := os.Open(s.Path(d))
	if err != nil {
		return nil, errors.WithMessagef(err, "blob %s", d)
	}
	return f, nil
}

// Delete removes the committed blob file; a missing file is not an error.
// The directory is not fsynced: a delete lost to a crash leaves a blob no
// namespace holds, which gc removes again.
func (s *Store) Delete(d digest.Digest) error {
	if err := ValidateDigest(d); err != nil {
		return err
	}
	if err := os.Remove(s.Path(d)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return errors.WithMessagef(err, "blob %s", d)
	}
	return nil
}

// Walk calls fn for every committed blob (order unspecified). Files whose
// name is not a sha256 hex digest are skipped, as are blobs deleted while
// the walk runs. An error from fn stops the walk and is returned.
func (s *Store) Walk(fn func(Info) error) error {
	return walkDir(s.blobDir, func(fi os.FileInfo) error {
		d := digest.NewDigestFromEncoded(digest.SHA256, fi.Name())
		if ValidateDigest(d) != nil {
			return nil
		}
		return fn(Info{
			Digest:  d,
			Size:    fi.Size(),
			ModTime: fi.ModTime(),
		})
	})
}

// IngestInfo describes an unfinished ingest file.
type IngestInfo struct {
	Name    string
	Size    int64
	ModTime time.Time
}

// WalkIngests calls fn for every file in the ingest directory. ModTime is
// the time of the last write, which is what a grace period is measured
// against.
func (s *Store) WalkIngests(fn func(IngestInfo) error) error {
	return walkDir(s.ingestDir, func(fi os.FileInfo) error {
		return fn(IngestInfo{Name: fi.Name(), Size: fi.Size(), ModTime: fi.ModTime()})
	})
}

// RemoveIngest removes one unfinished ingest by name (as WalkIngests
// reported it). A name that is not a plain file name is refused; an ingest
// that is already gone (committed or removed meanwhile) is not an error.
func (s *Store) RemoveIngest(name string) error {
	if name == "" || name == "." || strings.ContainsAny(name, "/\x00") || strings.Contains(name, "..") {
		return errors.WithMessagef(os.ErrInvalid, "ingest name %q: must be a plain file name", name)
	}
	if err := os.Remove(filepath.Join(s.ingestDir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return errors.WithMessagef(err, "ingest %q", name)
	}
	return nil
}

// walkDir calls fn for every regular file in dir, reading the directory in
// batches. Entries that vanish between readdir and lstat are skipped.
func walkDir(dir string, fn func(os.FileInfo) error) error {
	d, err := os.Open(dir)
	if err != nil {
		return errors.WithMessagef(err, "walk %s", dir)
	}
	defer d.Close()
	for {
		entries, err := d.ReadDir(walkBatch)
		for _, entry := range entries {
			if !entry.Type().IsRegular() {
				continue
			}
			fi, err := entry.Info()
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			if err != nil {
				return errors.WithMessagef(err, "walk %s", dir)
			}
			if err := fn(fi); err != nil {
				return err
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return errors.WithMessagef(err, "walk %s", dir)
		}
	}
}

// syncDir fsyncs a directory, making the entries created, renamed or
// removed in it durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	if err := d.Sync(); err != nil {
		d.Close()
		return err
	}
	return d.Close()
}
