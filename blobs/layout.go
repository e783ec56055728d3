package blobs

import (
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/opencontainers/go-digest"
	"github.com/pkg/errors"
)

// The store's directories relative to its root, as messages name them.
// Only this package builds paths below them; everyone else asks it.
const (
	blobDirName   = "blobs/sha256"
	ingestDirName = "ingest"
	// quarantineDir is where a repair moves what it must not delete and
	// must not serve: corrupt blob files, links and other strays.
	quarantineDir = "quarantine"
)

// RelPath names blob d's file relative to the store's root
// ("blobs/sha256/<hex>"), as messages and reports print it. A damaged
// record's digest, which is not valid, is named by what follows its
// colon, as it is: the name is for reading, never for opening.
func RelPath(d digest.Digest) string {
	if ValidateDigest(d) != nil {
		// go-digest's Encoded panics on an invalid digest.
		_, hex, _ := strings.Cut(string(d), ":")
		return blobDirName + "/" + hex
	}
	return blobDirName + "/" + d.Encoded()
}

// IngestRelPath names the ingest file name relative to the store's root
// ("ingest/<name>"), as messages and reports print it.
func IngestRelPath(name string) string { return ingestDirName + "/" + name }

// CountBlobEntries counts the entries of <root>/blobs/sha256, up to
// upTo, without opening the store (which would create the directories):
// enough to tell an empty store from one holding blobs. A missing
// directory counts 0; one that is not a directory (never followed) is an
// error.
func CountBlobEntries(root string, upTo int) (int, error) {
	dir := filepath.Join(root, blobDirName)
	fi, err := os.Lstat(dir)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err == nil && !fi.IsDir() {
		// Never followed: a link there is not the store's directory.
		return 0, errors.Errorf("%s is %s, not a directory", blobDirName, KindOf(fi.Mode()))
	}
	f, err := os.Open(dir)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	names, err := f.Readdirnames(upTo)
	if err != nil && err != io.EOF {
		return 0, err
	}
	return len(names), nil
}

// Contents is what the blob and ingest directories hold, each entry
// judged by its kind and name (lstat: a link is a link).
type Contents struct {
	Files   map[digest.Digest]int64 // regular blob files named by a digest, and their sizes
	Ingests []IngestInfo            // regular ingest files, sorted by name
	Strays  []Stray                 // anything else, sorted by path: never followed, read or deleted
}

// Stray is an entry of blobs/sha256 or ingest/ that is neither a blob
// file nor an ingest file, and why.
type Stray struct {
	Entry
	Why string // "is a symlink where a blob file should be (never followed)"
}

// List walks the blob and ingest directories whatever their entries are,
// and sorts them into blob files, ingest files and strays.
func (s *Store) List() (Contents, error) {
	found := Contents{Files: map[digest.Digest]int64{}}
	stray := func(e Entry, why string) { found.Strays = append(found.Strays, Stray{Entry: e, Why: why}) }
	if err := s.walkBlobEntries(func(e Entry) error {
		d := digest.NewDigestFromEncoded(digest.SHA256, e.Name)
		switch {
		case !e.Mode.IsRegular():
			stray(e, "is "+KindOf(e.Mode)+" where a blob file should be (never followed)")
		case ValidateDigest(d) != nil:
			stray(e, "is not a blob (the name must be 64 lowercase hex digits)")
		default:
			found.Files[d] = e.Size
		}
		return nil
	}); err != nil {
		return found, errors.WithMessagef(err, "store %s: blob directory", s.root)
	}
	if err := s.walkIngestEntries(func(e Entry) error {
		if !e.Mode.IsRegular() {
			stray(e, "is "+KindOf(e.Mode)+" where an ingest file should be (never followed)")
			return nil
		}
		found.Ingests = append(found.Ingests, IngestInfo{Name: e.Name, Size: e.Size, ModTime: e.ModTime})
		return nil
	}); err != nil {
		return found, errors.WithMessagef(err, "store %s: ingest directory", s.root)
	}
	sort.Slice(found.Ingests, func(i, j int) bool { return found.Ingests[i].Name < found.Ingests[j].Name })
	sort.Slice(found.Strays, func(i, j int) bool { return found.Strays[i].Path < found.Strays[j].Path })
	return found, nil
}
