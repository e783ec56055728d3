package metadata

import (
	"io"
	"os"
	"time"

	"github.com/opencontainers/go-digest"
)

// Blob is a blob as one namespace sees it.
type Blob struct {
	Digest    digest.Digest
	Size      int64
	Held      bool // ns holds it (listed in blobs/sha256, counted by rmdir)
	InUse     bool // an image of ns references it
	Labels    map[string]string
	CreatedAt time.Time
}

// ValidateDigest checks "sha256:<64 lowercase hex>" (ErrInvalidArgument).
func ValidateDigest(d digest.Digest) error { panic("not implemented") }

// GetBlob returns a blob ns can see (ErrNotFound otherwise).
func (db *DB) GetBlob(ns string, d digest.Digest) (Blob, error) { panic("not implemented") }

// ListBlobs returns the blobs ns holds, sorted by digest.
func (db *DB) ListBlobs(ns string) ([]Blob, error) { panic("not implemented") }

// OpenBlob opens a blob ns can see for reading (ErrNotFound).
func (db *DB) OpenBlob(ns string, d digest.Digest) (*os.File, error) { panic("not implemented") }

// DeleteBlob makes ns drop blob d: ErrInUse while an image of ns
// references it, ErrNotFound unless ns holds it. The file leaves the disk
// when no namespace holds it.
func (db *DB) DeleteBlob(ns string, d digest.Digest) error { panic("not implemented") }

// BlobWriter is an ingest of one blob into a namespace.
type BlobWriter struct{}

// WriteBlob starts an ingest of d into ns: ErrExists when ns can already see
// d (nothing to send), ErrInvalidArgument for a bad digest, ErrNotFound for
// a missing namespace. The bytes go to a temporary file.
func (db *DB) WriteBlob(ns string, d digest.Digest) (*BlobWriter, error) { panic("not implemented") }

var _ io.Writer = (*BlobWriter)(nil)

// Write appends p.
func (w *BlobWriter) Write(p []byte) (int, error) { panic("not implemented") }

// WriteAt accepts only sequential writes (off == Size()).
func (w *BlobWriter) WriteAt(p []byte, off int64) (int, error) { panic("not implemented") }

// Size is the number of bytes written so far.
func (w *BlobWriter) Size() int64 { panic("not implemented") }

// Commit verifies the digest (ErrDigestMismatch: nothing is kept), fsyncs,
// publishes the file and records that ns holds it, in that order. A second
// Commit after success is a no-op returning nil.
func (w *BlobWriter) Commit() error { panic("not implemented") }

// Abort discards the ingest. Safe after Commit.
func (w *BlobWriter) Abort() error { panic("not implemented") }
