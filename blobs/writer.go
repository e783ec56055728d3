package blobs

import (
	"os"
	"sync"
	"sync/atomic"

	"github.com/opencontainers/go-digest"
	"github.com/pkg/errors"
	"golang.org/x/sys/unix"
)

// Writer streams one blob into a temporary ingest file, hashing as it goes.
// Its methods may be called from several goroutines (FUSE serves writes of
// one handle concurrently), but the bytes must still arrive in order.
type Writer struct {
	store    *Store
	expected digest.Digest

	mu       sync.Mutex
	file     *os.File // nil once committed or aborted
	tempPath string
	digester digest.Digester
	size     int64
	prepared bool // verified: no more writes
	synced   bool // 0444 and fsynced
}

// NewWriter starts an ingest of a blob that must hash to expected
// (sha256 only: anything else is ErrUnsupportedDigest).
func (s *Store) NewWriter(expected digest.Digest) (*Writer, error) {
	if err := ValidateDigest(expected); err != nil {
		return nil, err
	}
	// The digest in the name tells an operator (and gc logs) what the
	// leftover ingest was; the random suffix lets concurrent ingests of
	// one digest coexist.
	f, err := os.CreateTemp(s.ingestDir, expected.Encoded()+"-*")
	if err != nil {
		return nil, errors.WithMessagef(err, "ingest blob %s", expected)
	}
	return &Writer{
		store:    s,
		expected: expected,
		file:     f,
		tempPath: f.Name(),
		digester: digest.SHA256.Digester(),
	}, nil
}

// Write appends p.
func (w *Writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.writeLocked(p)
}

// WriteAt accepts only off == w.Size() (ErrNonSequentialWrite otherwise).
func (w *Writer) WriteAt(p []byte, off int64) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if off != w.size {
		return 0, errors.WithMessagef(ErrNonSequentialWrite, "blob %s: write at offset %d, but %d bytes were written so far",
			w.expected, off, w.size)
	}
	return w.writeLocked(p)
}

func (w *Writer) writeLocked(p []byte) (int, error) {
	if w.file == nil || w.prepared {
		return 0, errors.WithMessagef(os.ErrClosed, "blob %s: ingest already committed or aborted", w.expected)
	}
	n, err := w.file.Write(p)
	// Hash exactly what reached the file, so Size and Digest stay true
	// to it even after a short write.
	w.digester.Hash().Write(p[:n])
	w.size += int64(n)
	if err != nil {
		return n, errors.WithMessagef(err, "ingest blob %s", w.expected)
	}
	return n, nil
}

// Size is the number of bytes written so far.
func (w *Writer) Size() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.size
}

// Digest is the digest of the bytes written so far.
func (w *Writer) Digest() digest.Digest {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.digester.Digest()
}

// Expected is the digest the blob must have.
func (w *Writer) Expected() digest.Digest { return w.expected }

// verifyLocked reports ErrDigestMismatch (wrapped, naming both digests)
// unless the bytes written so far hash to the expected digest.
func (w *Writer) verifyLocked() error {
	if got := w.digester.Digest(); got != w.expected {
		return errors.WithMessagef(ErrDigestMismatch, "blob %s: got %s from %d bytes", w.expected, got, w.size)
	}
	return nil
}

// Prepare verifies the bytes and makes them durable (mode 0444, fsync)
// without publishing them: the slow half of Commit, which a caller that
// serialises Commit can run before taking its lock. Further writes are
// refused. On error the temporary file is removed.
func (w *Writer) Prepare() (err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.prepareLocked()
}

func (w *Writer) prepareLocked() (err error) {
	if w.file == nil {
		return errors.WithMessagef(os.ErrClosed, "blob %s: ingest already committed or aborted", w.expected)
	}
	if w.prepared {
		return nil
	}
	defer func() {
		if err != nil {
			w.abortLocked()
		}
	}()
	if err := w.verifyLocked(); err != nil {
		return err
	}
	// A duplicate needs no fsync of its bytes (Commit syncs them should
	// the other copy be gone by then).
	if _, err := os.Lstat(w.store.Path(w.expected)); err != nil {
		if err := w.syncLocked(); err != nil {
			return err
		}
	}
	w.prepared = true
	return nil
}

func (w *Writer) syncLocked() error {
	if w.synced {
		return nil
	}
	// Mode before fsync, so the fsync makes the mode durable too.
	if err := w.file.Chmod(blobMode); err != nil {
		return errors.WithMessagef(err, "ingest blob %s", w.expected)
	}
	if err := w.file.Sync(); err != nil {
		return errors.WithMessagef(err, "ingest blob %s", w.expected)
	}
	w.synced = true
	return nil
}

// Commit prepares (unless Prepare did) and renames the blob into place
// (then fsyncs the directory). If the blob already exists the temporary
// file is removed and existed is true. On any error the temporary file is
// removed. The caller serialises Commit against Delete of the same digest.
func (w *Writer) Commit() (existed bool, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.prepareLocked(); err != nil {
		return false, err
	}
	defer func() {
		if err != nil {
			w.abortLocked()
		}
	}()
	target := w.store.Path(w.expected)
	_, statErr := os.Lstat(target)
	duplicate := statErr == nil
	if !duplicate {
		if err := w.syncLocked(); err != nil {
			return false, err
		}
	}
	file := w.file
	w.file = nil
	if err := file.Close(); err != nil {
		return false, errors.WithMessagef(err, "ingest blob %s", w.expected)
	}
	if duplicate {
		existed = true
	} else if existed, err = publish(w.tempPath, target); err != nil {
		return false, errors.WithMessagef(err, "commit blob %s", w.expected)
	}
	if existed {
		if err := os.Remove(w.tempPath); err != nil && !errors.Is(err, os.ErrNotExist) {
			return false, errors.WithMessagef(err, "commit blob %s", w.expected)
		}
	}
	// The name is gone (published or removed); forget it, so that a later
	// Abort cannot remove another ingest that happens to reuse it.
	w.tempPath = ""
	// Also when it existed: a concurrent writer may have renamed it in
	// without having fsynced the directory yet, and our caller is about
	// to record the blob as durable. A clean directory syncs for free.
	if err := syncDir(w.store.blobDir); err != nil {
		return false, errors.WithMessagef(err, "commit blob %s", w.expected)
	}
	return existed, nil
}

// Abort removes the temporary file. Safe to call after Commit or twice.
func (w *Writer) Abort() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.abortLocked()
}

func (w *Writer) abortLocked() error {
	if w.file != nil {
		w.file.Close()
		w.file = nil
	}
	if w.tempPath == "" {
		return nil
	}
	tempPath := w.tempPath
	w.tempPath = ""
	if err := os.Remove(tempPath); err != nil && !errors.Is(err, os.ErrNotExist) {
		return errors.WithMessagef(err, "abort ingest of blob %s", w.expected)
	}
	return nil
}

// WriteBytes ingests a whole blob held in memory (Commit semantics). When
// the blob is already in the store, nothing is written: that is what makes
// copying an image into a second namespace cost no bytes.
func (s *Store) WriteBytes(expected digest.Digest, data []byte) (existed bool, err error) {
	if err := ValidateDigest(expected); err != nil {
		return false, err
	}
	if got := digest.SHA256.FromBytes(data); got != expected {
		return false, errors.WithMessagef(ErrDigestMismatch, "blob %s: got %s from %d bytes", expected, got, len(data))
	}
	if _, err := os.Lstat(s.Path(expected)); err == nil {
		// As in Commit: make sure the entry we rely on is durable.
		if err := syncDir(s.blobDir); err != nil {
			return false, errors.WithMessagef(err, "commit blob %s", expected)
		}
		return true, nil
	}
	w, err := s.NewWriter(expected)
	if err != nil {
		return false, err
	}
	defer w.Abort()
	if _, err := w.Write(data); err != nil {
		return false, err
	}
	return w.Commit()
}

// noReplaceUnsupported records that publish had to fall back to
// publishByStat (tests relax their exactly-one-publisher check then).
var noReplaceUnsupported atomic.Bool

// publish moves the verified temporary file to target unless target exists
// already, in which case it reports existed and leaves both files alone.
// renameat2(RENAME_NOREPLACE) makes that one atomic step, so of concurrent
// writers of one blob exactly one publishes and an existing blob's inode is
// never replaced under its readers.
func publish(tempPath, target string) (existed bool, err error) {
	err = unix.Renameat2(unix.AT_FDCWD, tempPath, unix.AT_FDCWD, target, unix.RENAME_NOREPLACE)
	switch {
	case err == nil:
		return false, nil
	case errors.Is(err, unix.EEXIST):
		return true, nil
	case errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS):
		// A filesystem (or kernel) without RENAME_NOREPLACE.
		noReplaceUnsupported.Store(true)
		return publishByStat(tempPath, target)
	default:
		return false, &os.LinkError{Op: "rename", Old: tempPath, New: target, Err: err}
	}
}

// publishByStat is publish for filesystems without RENAME_NOREPLACE: a
// racing writer of the same blob may replace the file with identical
// bytes, which readers cannot tell apart.
func publishByStat(tempPath, target string) (existed bool, err error) {
	if _, err := os.Lstat(target); err == nil {
		return true, nil
	}
	if err := os.Rename(tempPath, target); err != nil {
		return false, err
	}
	return false, nil
}
