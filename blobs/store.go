// Package blobs is the shared content-addressed directory of an nsfs store.
// It knows nothing of namespaces: which namespace holds which blob is
// metadata's business. On disk:
//
//	<root>/blobs/sha256/<hex>   committed blobs, mode 0444, never modified
//	<root>/ingest/<hex>-<rand>  ingests in progress (cleaned up by gc)
//	<root>/quarantine/<name>    what a repair moved aside (Quarantine)
//
// This package alone knows that layout (layout.go): others name a blob's
// file with RelPath, an ingest's with IngestRelPath, and list what the
// directories hold with List; metadata keeps only its own files
// (meta.db, the reserve) beside them.
//
// A blob becomes visible only by an atomic rename after its bytes were
// verified against the expected digest and fsynced, so readers never see a
// partial blob. The directory is fsynced after the rename, so a blob whose
// Commit returned survives a power cut before the metadata naming it commits.
//
// The directory is not trusted: anyone with write access to it may plant a
// symlink, a fifo or a file of the wrong size under a blob's name, or swap
// a directory for a link. So the store opens blobs/sha256 and ingest/ once,
// refusing links, and does everything after that relative to those
// descriptors, never through a path and never following a link: a blob's
// file is used only if it is a regular file of the size the caller
// expects (ErrUnsafe, ErrDamaged otherwise), and publishing the honest
// bytes replaces whatever else sits under the name.
package blobs

import (
	// go-digest hashes through crypto.Hash, which needs the implementation
	// linked in; without it digest.SHA256 is "not available" and panics.
	_ "crypto/sha256"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/pkg/errors"
	"golang.org/x/sys/unix"
)

var (
	// ErrDigestMismatch: the bytes written do not hash to the expected digest.
	ErrDigestMismatch = errors.New("digest mismatch")
	// ErrNonSequentialWrite: an ingest is hashed while written, so it must
	// be written from offset 0 onwards without gaps or rewinds.
	ErrNonSequentialWrite = errors.New("blobs are written sequentially")
	// ErrUnsupportedDigest: only sha256 digests are stored.
	ErrUnsupportedDigest = errors.New("unsupported digest algorithm")
	// ErrUnsafe: an entry of the store is not of the kind it must be (a
	// symlink or fifo where a blob or directory belongs). It is never
	// followed, read or removed.
	ErrUnsafe = errors.New("unsafe entry in the blob store")
	// ErrDamaged: a blob's file is a regular file, but not of the blob's
	// size (cut short or grown behind nsfs's back).
	ErrDamaged = errors.New("damaged blob file")
)

// storeError is an error of one of the kinds above whose message says it
// all (the kind's own text would only repeat it).
type storeError struct {
	kind error
	msg  string
}

func (e *storeError) Error() string        { return e.msg }
func (e *storeError) Is(target error) bool { return target == e.kind }

// Info describes a committed blob.
type Info struct {
	Digest  digest.Digest
	Size    int64
	ModTime time.Time
	Mode    os.FileMode // as lstat reports it: a link is a link
}

// Entry is one entry of blobs/sha256 or ingest/, whatever its name or
// kind (lstat semantics: a symlink is reported, never followed).
type Entry struct {
	Path    string // relative to the root: "blobs/sha256/<name>" or "ingest/<name>"
	Name    string
	Mode    os.FileMode
	Size    int64
	ModTime time.Time
}

// Store is the shared blob directory.
type Store struct {
	root      string
	rootDir   *os.File // <root>, where quarantine/ is made
	blobDir   *os.File // <root>/blobs/sha256, opened without following links
	ingestDir *os.File // <root>/ingest, likewise
}

// dirMode is the mode of the directories the store creates.
const dirMode = 0o755

// blobMode is the mode of a committed blob: its bytes never change.
const blobMode = 0o444

// walkBatch bounds how many directory entries a walk holds at once, so
// that walking a store of millions of blobs stays small in memory.
const walkBatch = 1024

// invalidDigestName is the file name Path gives for an invalid digest. It
// is not 64 hex digits, so it can never be a committed blob, and it has no
// '/', so the path stays inside the blob directory.
const invalidDigestName = "invalid-digest"

// Open creates (if needed) and opens the blob directory below root. root
// itself may be reached through links (it is the operator's choice);
// blobs, blobs/sha256 and ingest below it must be directories, not links
// to one (ErrUnsafe).
func Open(root string) (*Store, error) {
	if err := os.MkdirAll(root, dirMode); err != nil {
		return nil, errors.WithMessagef(err, "blob store %s", root)
	}
	rootFD, err := retryEINTR(func() (int, error) {
		return unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	})
	if err != nil {
		return nil, errors.WithMessagef(&os.PathError{Op: "open", Path: root, Err: err}, "blob store %s", root)
	}
	s := &Store{root: root, rootDir: os.NewFile(uintptr(rootFD), root)}
	blobsFD, err := s.openDir(rootFD, "blobs", "blobs")
	if err != nil {
		s.rootDir.Close()
		return nil, err
	}
	defer unix.Close(blobsFD)
	sha256FD, err := s.openDir(blobsFD, string(digest.SHA256), blobDirName)
	if err != nil {
		s.rootDir.Close()
		return nil, err
	}
	s.blobDir = os.NewFile(uintptr(sha256FD), s.display(blobDirName))
	ingestFD, err := s.openDir(rootFD, ingestDirName, ingestDirName)
	if err != nil {
		s.rootDir.Close()
		s.blobDir.Close()
		return nil, err
	}
	s.ingestDir = os.NewFile(uintptr(ingestFD), s.display(ingestDirName))
	// The directories we may just have created must survive a power cut
	// as much as the blobs renamed into them.
	for _, fd := range []int{blobsFD, rootFD} {
		if err := unix.Fsync(fd); err != nil {
			s.Close()
			return nil, errors.WithMessagef(err, "blob store %s: fsync", root)
		}
	}
	return s, nil
}

// openDir opens (making it first if missing) the directory name in the
// directory parent, without following a link; rel names it in errors.
func (s *Store) openDir(parent int, name, rel string) (int, error) {
	open := func() (int, error) {
		return unix.Openat(parent, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	}
	fd, err := retryEINTR(open)
	if err == unix.ENOENT {
		if err := unix.Mkdirat(parent, name, dirMode); err != nil && err != unix.EEXIST {
			return -1, errors.WithMessagef(&os.PathError{Op: "mkdir", Path: s.display(rel), Err: err}, "blob store %s", s.root)
		}
		fd, err = retryEINTR(open)
	}
	if err == unix.ELOOP || err == unix.ENOTDIR {
		// O_NOFOLLOW says ELOOP for a link, O_DIRECTORY ENOTDIR for a
		// file: lstat says which, for the message.
		var st unix.Stat_t
		if unix.Fstatat(parent, name, &st, unix.AT_SYMLINK_NOFOLLOW) == nil {
			return -1, s.notDirectory(rel, fileMode(&st))
		}
	}
	if err != nil {
		return -1, errors.WithMessagef(&os.PathError{Op: "open", Path: s.display(rel), Err: err}, "blob store %s", s.root)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return -1, errors.WithMessagef(&os.PathError{Op: "stat", Path: s.display(rel), Err: err}, "blob store %s", s.root)
	}
	if mode := fileMode(&st); !mode.IsDir() {
		unix.Close(fd)
		return -1, s.notDirectory(rel, mode)
	}
	return fd, nil
}

// notDirectory refuses one of the store's directories; only a person can
// say what the thing in its place is, so the message says what to do.
func (s *Store) notDirectory(rel string, mode os.FileMode) error {
	err := s.unsafe(rel, mode, "a directory")
	err.msg += fmt.Sprintf("; nothing was changed (move %s away and make it a directory again: mkdir %s)", s.display(rel), s.display(rel))
	return err
}

// CheckQuarantine opens quarantine/ (making it if missing) as Quarantine
// will, so that a repair can refuse before it changes anything when a
// link or a file stands in its place.
func (s *Store) CheckQuarantine() error {
	return withFD(s.rootDir, func(root int) error {
		fd, err := s.openDir(root, quarantineDir, quarantineDir)
		if err != nil {
			return err
		}
		return unix.Close(fd)
	})
}

// unsafe is the ErrUnsafe for the entry rel, of the given mode, where
// want belongs.
func (s *Store) unsafe(rel string, mode os.FileMode, want string) *storeError {
	msg := fmt.Sprintf("blob store %s: %s is %s, not %s", s.root, rel, KindOf(mode), want)
	if mode&os.ModeSymlink != 0 {
		msg += "; nsfs never follows links in its store"
	}
	return &storeError{kind: ErrUnsafe, msg: msg}
}

// Close closes the store's directories. Operations after it fail.
func (s *Store) Close() error {
	var first error
	for _, dir := range []*os.File{s.rootDir, s.blobDir, s.ingestDir} {
		if err := dir.Close(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// Root is the directory the store was opened at.
func (s *Store) Root() string { return s.root }

// display is the path of rel (relative to the root), for messages only.
func (s *Store) display(rel string) string { return filepath.Join(s.root, rel) }

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

// blobPath is where the committed blob d lives (whether or not it exists),
// for messages and for tests that reach into the store: the store itself
// never goes through it. For an invalid digest it is a name inside the
// blob directory that no blob ever has, so the path never escapes the
// directory.
func (s *Store) blobPath(d digest.Digest) string {
	if ValidateDigest(d) != nil {
		return s.display(blobDirName + "/" + invalidDigestName)
	}
	return s.display(RelPath(d))
}

// Stat returns the committed blob's info as lstat sees it (Mode tells a
// link or fifo planted under the name), or an error satisfying
// errors.Is(err, os.ErrNotExist).
func (s *Store) Stat(d digest.Digest) (Info, error) {
	if err := ValidateDigest(d); err != nil {
		return Info{}, err
	}
	st, err := s.lstat(s.blobDir, d.Encoded())
	if err != nil {
		return Info{}, errors.WithMessagef(&os.PathError{Op: "lstat", Path: s.blobPath(d), Err: err}, "blob %s", d)
	}
	return Info{Digest: d, Size: st.Size, ModTime: modTime(&st), Mode: fileMode(&st)}, nil
}

// Check reports whether blob d's file is sound: a regular file of size
// bytes (any size when size < 0). Otherwise the error satisfies
// errors.Is with os.ErrNotExist (missing), ErrUnsafe (not a regular file)
// or ErrDamaged (the wrong size). It does not read the bytes.
func (s *Store) Check(d digest.Digest, size int64) error {
	info, err := s.Stat(d)
	if err != nil {
		return err
	}
	return s.checkFile(d, info.Mode, info.Size, size)
}

// checkFile is Check of a file already stat'ed.
func (s *Store) checkFile(d digest.Digest, mode os.FileMode, got, size int64) error {
	if !mode.IsRegular() {
		return s.unsafe(RelPath(d), mode, "a regular file")
	}
	if size >= 0 && got != size {
		return &storeError{kind: ErrDamaged, msg: fmt.Sprintf("blob store %s: %s has %d bytes, not the blob's %d (damaged)", s.root, RelPath(d), got, size)}
	}
	return nil
}

// Open opens the committed blob for reading. Its file must be a regular
// file (ErrUnsafe: a link is not followed, a fifo not waited on) and, when
// size >= 0, of exactly size bytes (ErrDamaged). A missing file is
// errors.Is(err, os.ErrNotExist).
func (s *Store) Open(d digest.Digest, size int64) (*os.File, error) {
	if err := ValidateDigest(d); err != nil {
		return nil, err
	}
	// Looked at before it is opened: opening a planted device runs its
	// driver's open, whatever the fstat after it then says.
	if st, err := s.lstat(s.blobDir, d.Encoded()); err == nil {
		if mode := fileMode(&st); !mode.IsRegular() {
			return nil, s.unsafe(RelPath(d), mode, "a regular file")
		}
	}
	var fd int
	err := withFD(s.blobDir, func(dir int) (err error) {
		fd, err = retryEINTR(func() (int, error) {
			return unix.Openat(dir, d.Encoded(), unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NONBLOCK|unix.O_NOCTTY, 0)
		})
		return err
	})
	if err == unix.ELOOP {
		return nil, s.unsafe(RelPath(d), os.ModeSymlink, "a regular file")
	}
	if err != nil {
		return nil, errors.WithMessagef(&os.PathError{Op: "open", Path: s.blobPath(d), Err: err}, "blob %s", d)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, errors.WithMessagef(&os.PathError{Op: "stat", Path: s.blobPath(d), Err: err}, "blob %s", d)
	}
	if err := s.checkFile(d, fileMode(&st), st.Size, size); err != nil {
		unix.Close(fd)
		return nil, err
	}
	// O_NONBLOCK was for a fifo's open; a regular file reads the same
	// either way, but its readers expect an ordinary descriptor.
	if err := unix.SetNonblock(fd, false); err != nil {
		unix.Close(fd)
		return nil, errors.WithMessagef(&os.PathError{Op: "fcntl", Path: s.blobPath(d), Err: err}, "blob %s", d)
	}
	return os.NewFile(uintptr(fd), s.blobPath(d)), nil
}

// Delete removes the committed blob file; a missing file is not an error,
// anything but a regular file under the name is refused (ErrUnsafe) and
// left alone. The directory is not fsynced (SyncDeletes does that): a
// delete lost to a crash leaves a file its records still prove garbage,
// as long as they are not cleared before SyncDeletes returns.
func (s *Store) Delete(d digest.Digest) error {
	if err := ValidateDigest(d); err != nil {
		return err
	}
	if err := s.removeRegular(s.blobDir, blobDirName, d.Encoded()); err != nil {
		return errors.WithMessagef(err, "blob %s", d)
	}
	return nil
}

// SyncDeletes makes the deletes of blob files so far durable (fsyncs
// blobs/sha256): the records that proved them garbage may go only after,
// or a power cut could bring back a file no record names.
func (s *Store) SyncDeletes() error {
	if err := syncDir(s.blobDir); err != nil {
		return errors.WithMessagef(err, "blob store %s", s.root)
	}
	return nil
}

// removeRegular unlinks name from dir (rel names dir in messages) if it
// is a regular file: nil if it is missing, ErrUnsafe if it is anything
// else. Should a link take the file's place between the lstat and the
// unlink, the unlink removes the link itself, never what it points to.
func (s *Store) removeRegular(dir *os.File, rel, name string) error {
	st, err := s.lstat(dir, name)
	if err == unix.ENOENT {
		return nil
	}
	if err != nil {
		return &os.PathError{Op: "lstat", Path: s.display(rel + "/" + name), Err: err}
	}
	if mode := fileMode(&st); !mode.IsRegular() {
		err := s.unsafe(rel+"/"+name, mode, "a regular file")
		err.msg += " (left alone)"
		return err
	}
	err = withFD(dir, func(fd int) error { return unix.Unlinkat(fd, name, 0) })
	if err != nil && err != unix.ENOENT {
		return &os.PathError{Op: "unlink", Path: s.display(rel + "/" + name), Err: err}
	}
	return nil
}

// walkBlobEntries calls fn for every entry of blobs/sha256, whatever its
// name or kind, so that planted links, fifos and directories can be
// reported.
func (s *Store) walkBlobEntries(fn func(Entry) error) error {
	return s.walkDir(s.blobDir, blobDirName, fn)
}

// IngestInfo describes an unfinished ingest file.
type IngestInfo struct {
	Name    string
	Size    int64
	ModTime time.Time
}

// WalkIngests calls fn for every regular file in the ingest directory.
// ModTime is the time of the last write, which is what a grace period is
// measured against.
func (s *Store) WalkIngests(fn func(IngestInfo) error) error {
	return s.walkIngestEntries(func(e Entry) error {
		if !e.Mode.IsRegular() {
			return nil
		}
		return fn(IngestInfo{Name: e.Name, Size: e.Size, ModTime: e.ModTime})
	})
}

// walkIngestEntries calls fn for every entry of ingest/, whatever its kind.
func (s *Store) walkIngestEntries(fn func(Entry) error) error {
	return s.walkDir(s.ingestDir, ingestDirName, fn)
}

// StatIngest is the entry of ingest/ called name, as lstat sees it.
func (s *Store) StatIngest(name string) (Entry, error) {
	if err := checkIngestName(name); err != nil {
		return Entry{}, err
	}
	st, err := s.lstat(s.ingestDir, name)
	if err != nil {
		return Entry{}, errors.WithMessagef(&os.PathError{Op: "lstat", Path: s.display(ingestDirName + "/" + name), Err: err}, "ingest %q", name)
	}
	return entryOf(ingestDirName, name, &st), nil
}

// RemoveIngest removes one unfinished ingest by name (as WalkIngests
// reported it). A name that is not a plain file name is refused, as is an
// entry that is not a regular file (ErrUnsafe); an ingest that is already
// gone (committed or removed meanwhile) is not an error.
func (s *Store) RemoveIngest(name string) error {
	if err := checkIngestName(name); err != nil {
		return err
	}
	if err := s.removeRegular(s.ingestDir, ingestDirName, name); err != nil {
		return errors.WithMessagef(err, "ingest %q", name)
	}
	return nil
}

func checkIngestName(name string) error {
	if name == "" || name == "." || strings.ContainsAny(name, "/\x00") || strings.Contains(name, "..") {
		return errors.WithMessagef(os.ErrInvalid, "ingest name %q: must be a plain file name", name)
	}
	return nil
}

// walkDir calls fn for every entry of dir (rel names it), reading the
// directory in batches through a descriptor of its own, so that walks
// can run concurrently. Entries that vanish between readdir and lstat are
// skipped.
func (s *Store) walkDir(dir *os.File, rel string, fn func(Entry) error) error {
	var fd int
	err := withFD(dir, func(dirFD int) (err error) {
		fd, err = retryEINTR(func() (int, error) {
			return unix.Openat(dirFD, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		})
		return err
	})
	if err != nil {
		return errors.WithMessagef(&os.PathError{Op: "open", Path: s.display(rel), Err: err}, "walk")
	}
	walk := os.NewFile(uintptr(fd), s.display(rel))
	defer walk.Close()
	for {
		names, err := walk.Readdirnames(walkBatch)
		for _, name := range names {
			st, err := s.lstat(walk, name)
			if err == unix.ENOENT {
				continue
			}
			if err != nil {
				return errors.WithMessagef(&os.PathError{Op: "lstat", Path: s.display(rel + "/" + name), Err: err}, "walk")
			}
			if err := fn(entryOf(rel, name, &st)); err != nil {
				return err
			}
		}
		if err == io.EOF || err == nil && len(names) == 0 {
			return nil
		}
		if err != nil {
			return errors.WithMessagef(err, "walk %s", s.display(rel))
		}
	}
}

func entryOf(rel, name string, st *unix.Stat_t) Entry {
	return Entry{Path: rel + "/" + name, Name: name, Mode: fileMode(st), Size: st.Size, ModTime: modTime(st)}
}

// lstat is fstatat(dir, name, AT_SYMLINK_NOFOLLOW); the error is the
// bare errno.
func (s *Store) lstat(dir *os.File, name string) (unix.Stat_t, error) {
	var st unix.Stat_t
	err := withFD(dir, func(fd int) error {
		_, err := retryEINTR(func() (int, error) {
			return 0, unix.Fstatat(fd, name, &st, unix.AT_SYMLINK_NOFOLLOW)
		})
		return err
	})
	return st, err
}

// syncDir fsyncs one of the store's directories, making the entries
// created, renamed or removed in it durable.
func syncDir(dir *os.File) error {
	return withFD(dir, func(fd int) error {
		if err := unix.Fsync(fd); err != nil {
			return &os.PathError{Op: "fsync", Path: dir.Name(), Err: err}
		}
		return nil
	})
}

// withFD runs fn with dir's descriptor, which stays open until fn
// returns even if the store is closed meanwhile (a closed store's
// operations fail instead of using a number the kernel gave to another
// file).
func withFD(dir *os.File, fn func(fd int) error) error {
	rc, err := dir.SyscallConn()
	if err != nil {
		return err
	}
	var fnErr error
	if err := rc.Control(func(fd uintptr) { fnErr = fn(int(fd)) }); err != nil {
		return err
	}
	return fnErr
}

// retryEINTR retries a system call a signal interrupted (Go's runtime
// sends them for preemption).
func retryEINTR(call func() (int, error)) (int, error) {
	for {
		n, err := call()
		if err != unix.EINTR {
			return n, err
		}
	}
}

func modTime(st *unix.Stat_t) time.Time { return time.Unix(st.Mtim.Unix()) }

// fileMode is the os.FileMode of a stat result, as os.Lstat gives it.
func fileMode(st *unix.Stat_t) os.FileMode {
	mode := os.FileMode(st.Mode & 0o777)
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFBLK:
		mode |= os.ModeDevice
	case unix.S_IFCHR:
		mode |= os.ModeDevice | os.ModeCharDevice
	case unix.S_IFDIR:
		mode |= os.ModeDir
	case unix.S_IFIFO:
		mode |= os.ModeNamedPipe
	case unix.S_IFLNK:
		mode |= os.ModeSymlink
	case unix.S_IFSOCK:
		mode |= os.ModeSocket
	}
	if st.Mode&unix.S_ISUID != 0 {
		mode |= os.ModeSetuid
	}
	if st.Mode&unix.S_ISGID != 0 {
		mode |= os.ModeSetgid
	}
	if st.Mode&unix.S_ISVTX != 0 {
		mode |= os.ModeSticky
	}
	return mode
}

// KindOf names the kind of file mode is, for messages: "a symlink", "a
// fifo", "a regular file".
func KindOf(mode os.FileMode) string {
	switch {
	case mode&os.ModeSymlink != 0:
		return "a symlink"
	case mode.IsDir():
		return "a directory"
	case mode&os.ModeNamedPipe != 0:
		return "a fifo"
	case mode&os.ModeSocket != 0:
		return "a socket"
	case mode&os.ModeDevice != 0:
		return "a device"
	case mode.IsRegular():
		return "a regular file"
	default:
		return "a file of unknown kind"
	}
}
