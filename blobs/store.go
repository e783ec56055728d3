// Package blobs is the shared content-addressed directory of an nsfs store.
// It knows nothing of namespaces: which namespace holds which blob is
// metadata's business. On disk:
//
//	<root>/blobs/sha256/<hex>   committed blobs, mode 0444, never modified
//	<root>/ingest/<random>      ingests in progress (cleaned up by gc)
//
// A blob becomes visible only by an atomic rename after its bytes were
// verified against the expected digest and fsynced, so readers never see a
// partial blob.
package blobs

import (
	"os"
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
	root string
}

// Open creates (if needed) and opens the blob directory below root.
func Open(root string) (*Store, error) { panic("not implemented") }

// Path is where the committed blob d lives (whether or not it exists).
func (s *Store) Path(d digest.Digest) string { panic("not implemented") }

// Stat returns the committed blob's info, or an error satisfying
// errors.Is(err, os.ErrNotExist).
func (s *Store) Stat(d digest.Digest) (Info, error) { panic("not implemented") }

// Open opens the committed blob for reading.
func (s *Store) Open(d digest.Digest) (*os.File, error) { panic("not implemented") }

// Delete removes the committed blob file; a missing file is not an error.
func (s *Store) Delete(d digest.Digest) error { panic("not implemented") }

// Walk calls fn for every committed blob (order unspecified).
func (s *Store) Walk(fn func(Info) error) error { panic("not implemented") }

// IngestInfo describes an unfinished ingest file.
type IngestInfo struct {
	Name    string
	Size    int64
	ModTime time.Time
}

// WalkIngests calls fn for every file in the ingest directory.
func (s *Store) WalkIngests(fn func(IngestInfo) error) error { panic("not implemented") }

// RemoveIngest removes one unfinished ingest by name.
func (s *Store) RemoveIngest(name string) error { panic("not implemented") }

// Writer streams one blob into a temporary ingest file, hashing as it goes.
type Writer struct{}

// NewWriter starts an ingest of a blob that must hash to expected
// (sha256 only: anything else is ErrUnsupportedDigest).
func (s *Store) NewWriter(expected digest.Digest) (*Writer, error) { panic("not implemented") }

// Write appends p.
func (w *Writer) Write(p []byte) (int, error) { panic("not implemented") }

// WriteAt accepts only off == w.Size() (ErrNonSequentialWrite otherwise).
func (w *Writer) WriteAt(p []byte, off int64) (int, error) { panic("not implemented") }

// Size is the number of bytes written so far.
func (w *Writer) Size() int64 { panic("not implemented") }

// Digest is the digest of the bytes written so far.
func (w *Writer) Digest() digest.Digest { panic("not implemented") }

// Expected is the digest the blob must have.
func (w *Writer) Expected() digest.Digest { panic("not implemented") }

// Verify reports ErrDigestMismatch (wrapped, naming both digests) unless the
// bytes written so far hash to the expected digest. It does not publish.
func (w *Writer) Verify() error { panic("not implemented") }

// Commit verifies, fsyncs the data, and renames it into place (then fsyncs
// the directory). If the blob already exists the temporary file is removed
// and existed is true. On any error the temporary file is removed.
// The caller serialises Commit against Delete of the same digest.
func (w *Writer) Commit() (existed bool, err error) { panic("not implemented") }

// Abort removes the temporary file. Safe to call after Commit or twice.
func (w *Writer) Abort() error { panic("not implemented") }

// WriteBytes ingests a whole blob held in memory (Commit semantics).
func (s *Store) WriteBytes(expected digest.Digest, data []byte) (existed bool, err error) {
	panic("not implemented")
}
