package blobs

import (
	"github.com/opencontainers/go-digest"
	"github.com/pkg/errors"
	"golang.org/x/sys/unix"
)

// tempIngestPrefix starts the name in ingest/ of an ingest whose digest is
// not known yet (NewTempWriter), where a blob's ingest has its digest.
const tempIngestPrefix = "temp"

// NewTempWriter starts an ingest of a blob whose digest is learned only at
// the end: a tool writes a temporary file and renames it to the digest.
// Expect names the digest before Prepare or Commit; until then Digest
// says what the bytes hash to. Left behind, it is an ordinary unfinished
// ingest, which gc collects after its grace period.
func (s *Store) NewTempWriter() (*Writer, error) {
	f, name, err := s.createIngest(tempIngestPrefix)
	if err != nil {
		return nil, errors.WithMessage(err, "temporary ingest")
	}
	return &Writer{
		store:    s,
		file:     f,
		tempName: name,
		digester: digest.SHA256.Digester(),
	}, nil
}

// Expect sets the digest the bytes must hash to, once, on a writer
// NewTempWriter made (one NewWriter made knows it: the same digest is
// accepted, another is ErrDigestMismatch).
func (w *Writer) Expect(d digest.Digest) error {
	if err := ValidateDigest(d); err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.expected != "" && w.expected != d {
		return errors.WithMessagef(ErrDigestMismatch, "ingest of blob %s cannot become blob %s", w.expected, d)
	}
	w.expected = d
	return nil
}

// Removed reports whether the ingest's file is gone from ingest/ while
// the writer still holds it open (gc collected it after its grace period,
// or an operator removed it): its bytes can no longer be committed.
// After Commit or Abort it is true.
func (w *Writer) Removed() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.file == nil {
		return true
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(w.file.Fd()), &st); err != nil {
		return false // cannot tell: keep it
	}
	return st.Nlink == 0
}
