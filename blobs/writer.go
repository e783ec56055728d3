package blobs

import (
	"io"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/opencontainers/go-digest"
	"github.com/pkg/errors"
	"golang.org/x/sys/unix"
)

// Writer streams one blob into a temporary ingest file, hashing as it goes.
// Its methods may be called from several goroutines (FUSE serves writes of
// one handle concurrently), but the bytes must still arrive in order.
//
// An I/O error (a full disk, a quota, EIO) ends the ingest: its file is
// removed, and every later Write, Prepare and Commit returns that same
// error, so that the writer learns why rather than a digest mismatch of
// the bytes that did not arrive.
type Writer struct {
	store    *Store
	expected digest.Digest

	mu       sync.Mutex
	file     *os.File // nil once committed, aborted or failed
	tempName string   // in ingest/; "" once published or removed
	digester digest.Digester
	size     int64
	unsynced int64 // bytes written since the last early writeback
	prepared bool  // verified: no more writes
	synced   bool  // 0444 and fsynced
	failed   error // the I/O error that ended the ingest
}

// createAttempts bounds the random names NewWriter tries; a collision is
// already as good as impossible.
const createAttempts = 100

// NewWriter starts an ingest of a blob that must hash to expected
// (sha256 only: anything else is ErrUnsupportedDigest).
func (s *Store) NewWriter(expected digest.Digest) (*Writer, error) {
	if err := ValidateDigest(expected); err != nil {
		return nil, err
	}
	f, name, err := s.createIngest(expected.Encoded())
	if err != nil {
		return nil, errors.WithMessagef(err, "ingest blob %s", expected)
	}
	return &Writer{
		store:    s,
		expected: expected,
		file:     f,
		tempName: name,
		digester: digest.SHA256.Digester(),
	}, nil
}

// createIngest makes a new file in ingest/. The digest in the name tells
// an operator (and gc logs) what a leftover ingest was; the random suffix
// lets concurrent ingests of one digest coexist. O_EXCL|O_NOFOLLOW: a
// name someone planted is never opened.
func (s *Store) createIngest(prefix string) (*os.File, string, error) {
	for range createAttempts {
		name := prefix + "-" + strconv.FormatUint(uint64(rand.Uint32()), 10)
		var fd int
		err := withFD(s.ingestDir, func(dir int) (err error) {
			fd, err = retryEINTR(func() (int, error) {
				return unix.Openat(dir, name, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
			})
			return err
		})
		if err == unix.EEXIST {
			continue
		}
		path := s.display(ingestDirName + "/" + name)
		if err != nil {
			// The errno stays reachable (errors.As): EMFILE, ENOSPC.
			return nil, "", &os.PathError{Op: "create", Path: path, Err: err}
		}
		return os.NewFile(uintptr(fd), path), name, nil
	}
	return nil, "", &os.PathError{Op: "create", Path: s.display(ingestDirName + "/" + prefix + "-*"), Err: unix.EEXIST}
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
	if w.failed != nil {
		// Before the offset check: the writer's next offset does not
		// match what arrived, and the reason is the I/O error.
		return 0, w.failed
	}
	if off != w.size {
		return 0, errors.WithMessagef(ErrNonSequentialWrite, "blob %s: write at offset %d, but %d bytes were written so far",
			w.expected, off, w.size)
	}
	return w.writeLocked(p)
}

func (w *Writer) writeLocked(p []byte) (int, error) {
	if w.failed != nil {
		return 0, w.failed
	}
	if w.file == nil || w.prepared {
		return 0, errors.WithMessagef(os.ErrClosed, "blob %s: ingest already committed or aborted", w.expected)
	}
	var n int
	var err error
	if len(p) >= parallelHashSize {
		// Hash while the kernel copies the bytes into the file: the two
		// take about the same time, and a lone stream (the last layer of
		// a pull) waits for both.
		hashed := make(chan struct{})
		go func() {
			w.digester.Hash().Write(p)
			close(hashed)
		}()
		n, err = w.file.Write(p)
		<-hashed
		if n < len(p) && err == nil {
			err = io.ErrShortWrite
		}
		// A short write hashed bytes the file does not hold: the ingest
		// fails below, and a failed ingest's digest is never used.
	} else {
		n, err = w.file.Write(p)
		w.digester.Hash().Write(p[:n])
	}
	w.size += int64(n)
	if err != nil {
		return n, w.fail(err)
	}
	w.startWriteback(int64(n))
	return n, nil
}

// parallelHashSize is the smallest write hashed on another goroutine
// while it is written: below it, the hand-off costs more than it saves.
const parallelHashSize = 128 << 10

// earlyWriteback is how many bytes an ingest writes before it asks the
// kernel to start writing them to disk, so that the disk works while
// the rest arrives and the fsync at commit has little left to wait for.
const earlyWriteback = 8 << 20

// startWriteback starts writeback of the last earlyWriteback bytes once
// that many were written (sync_file_range without waiting: no
// durability is promised here, Prepare's fsync does that).
func (w *Writer) startWriteback(n int64) {
	w.unsynced += n
	if w.unsynced < earlyWriteback {
		return
	}
	_ = unix.SyncFileRange(int(w.file.Fd()), w.size-w.unsynced, w.unsynced, unix.SYNC_FILE_RANGE_WRITE)
	w.unsynced = 0
}

// fail ends the ingest with an I/O error (which keeps its errno for
// errors.As) that every later call returns.
func (w *Writer) fail(err error) error {
	w.failed = errors.WithMessagef(err, "ingest blob %s (after %d bytes)", w.expected, w.size)
	w.abortLocked()
	return w.failed
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
	if w.expected == "" {
		return errors.WithMessagef(ErrDigestMismatch, "temporary ingest of %d bytes (%s): no digest to check them against yet", w.size, w.digester.Digest())
	}
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
	if w.failed != nil {
		return w.failed
	}
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
	// A duplicate of a sound blob needs no fsync of its bytes (Commit
	// syncs them should the other copy be gone by then).
	if w.store.Check(w.expected, w.size) != nil {
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
		return w.fail(err)
	}
	if err := w.file.Sync(); err != nil {
		return w.fail(err)
	}
	w.synced = true
	return nil
}

// Commit prepares (unless Prepare did) and renames the blob into place
// (then fsyncs the directory). If a sound copy already exists (a regular
// file of the blob's size) the temporary file is removed and existed is
// true; anything else under the name (nothing, a link, a fifo, a file of
// the wrong size) is replaced by the verified bytes. On any error the
// temporary file is removed. The caller serialises Commit against Delete
// and against other Commits of the same digest.
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
	duplicate := w.store.Check(w.expected, w.size) == nil
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
	} else if existed, err = w.store.publish(w.tempName, w.expected, w.size); err != nil {
		return false, errors.WithMessagef(err, "commit blob %s", w.expected)
	}
	if existed {
		if err := w.store.unlinkIngest(w.tempName); err != nil {
			return false, errors.WithMessagef(err, "commit blob %s", w.expected)
		}
	}
	// The name is gone (published or removed); forget it, so that a later
	// Abort cannot remove another ingest that happens to reuse it.
	w.tempName = ""
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
	if w.tempName == "" {
		return nil
	}
	name := w.tempName
	w.tempName = ""
	if err := w.store.unlinkIngest(name); err != nil {
		return errors.WithMessagef(err, "abort ingest of blob %s", w.expected)
	}
	return nil
}

// unlinkIngest removes the ingest file name this store created; a
// missing one is not an error.
func (s *Store) unlinkIngest(name string) error {
	err := withFD(s.ingestDir, func(fd int) error { return unix.Unlinkat(fd, name, 0) })
	if err != nil && err != unix.ENOENT {
		return &os.PathError{Op: "unlink", Path: s.display(ingestDirName + "/" + name), Err: err}
	}
	return nil
}

// WriteBytes ingests a whole blob held in memory (Commit semantics). When
// a sound copy of the blob is in the store, nothing is written: that is
// what makes copying an image into a second namespace cost no bytes.
func (s *Store) WriteBytes(expected digest.Digest, data []byte) (existed bool, err error) {
	if err := ValidateDigest(expected); err != nil {
		return false, err
	}
	if got := digest.SHA256.FromBytes(data); got != expected {
		return false, errors.WithMessagef(ErrDigestMismatch, "blob %s: got %s from %d bytes", expected, got, len(data))
	}
	if s.Check(expected, int64(len(data))) == nil {
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

// publishAttempts bounds how often publish looks again at a name whose
// entry keeps changing under it (someone removing and planting in a loop).
const publishAttempts = 8

// publish moves the verified, fsynced ingest tempName to blob d's name.
// A sound copy there (a regular file of size bytes) is kept: existed.
// Nothing there: renameat2(RENAME_NOREPLACE), so that of concurrent
// writers of one blob exactly one publishes and a sound blob's inode is
// never replaced under its readers. Anything else there (a link, a fifo,
// a device, a regular file of the wrong size) is replaced by a plain
// rename, which replaces a link itself, never its target; a directory is
// refused (ErrUnsafe).
func (s *Store) publish(tempName string, d digest.Digest, size int64) (existed bool, err error) {
	name := d.Encoded()
	for range publishAttempts {
		st, err := s.lstat(s.blobDir, name)
		switch {
		case err == unix.ENOENT:
			if existed, err := publishNoReplace(s.ingestDir, tempName, s.blobDir, name); err != nil || !existed {
				return false, s.renameError(tempName, d, err)
			}
			// Something appeared meanwhile: look at what.
			continue
		case err != nil:
			return false, &os.PathError{Op: "lstat", Path: s.blobPath(d), Err: err}
		}
		mode := fileMode(&st)
		if mode.IsDir() {
			return false, s.unsafe(RelPath(d), mode, "a regular file")
		}
		if s.checkFile(d, mode, st.Size, size) == nil {
			return true, nil
		}
		return false, s.renameError(tempName, d, renameat(s.ingestDir, tempName, s.blobDir, name, 0))
	}
	return false, &os.PathError{Op: "rename", Path: s.blobPath(d), Err: unix.EAGAIN}
}

func (s *Store) renameError(tempName string, d digest.Digest, err error) error {
	if err == nil {
		return nil
	}
	return &os.LinkError{Op: "rename", Old: s.display(ingestDirName + "/" + tempName), New: s.blobPath(d), Err: err}
}

// renameat is renameat2 between two of the store's directories; the
// error is the bare errno.
func renameat(fromDir *os.File, from string, toDir *os.File, to string, flags uint) error {
	return withFD(fromDir, func(fromFD int) error {
		return withFD(toDir, func(toFD int) error {
			_, err := retryEINTR(func() (int, error) {
				return 0, unix.Renameat2(fromFD, from, toFD, to, flags)
			})
			return err
		})
	})
}

// noReplaceUnsupported records that publish had to fall back to
// publishByStat (tests relax their exactly-one-publisher check then).
var noReplaceUnsupported atomic.Bool

// publishNoReplace renames from to to unless to exists already, in which
// case it reports existed and leaves both alone.
func publishNoReplace(fromDir *os.File, from string, toDir *os.File, to string) (existed bool, err error) {
	err = renameat(fromDir, from, toDir, to, unix.RENAME_NOREPLACE)
	switch err {
	case nil:
		return false, nil
	case unix.EEXIST:
		return true, nil
	case unix.EINVAL, unix.ENOSYS:
		// A filesystem (or kernel) without RENAME_NOREPLACE.
		noReplaceUnsupported.Store(true)
		return publishByStat(fromDir, from, toDir, to)
	default:
		return false, err
	}
}

// publishByStat is publishNoReplace for filesystems without
// RENAME_NOREPLACE: a racing writer of the same blob may replace the file
// with identical bytes, which readers cannot tell apart.
func publishByStat(fromDir *os.File, from string, toDir *os.File, to string) (existed bool, err error) {
	var st unix.Stat_t
	err = withFD(toDir, func(fd int) error { return unix.Fstatat(fd, to, &st, unix.AT_SYMLINK_NOFOLLOW) })
	if err == nil {
		return true, nil
	}
	if err != unix.ENOENT {
		return false, err
	}
	return false, renameat(fromDir, from, toDir, to, 0)
}
