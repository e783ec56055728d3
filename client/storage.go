package client

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/nsfs/nsfs/imagegraph"
	"github.com/nsfs/nsfs/names"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/pkg/errors"
	"oras.land/oras-go/v2"
	"oras.land/oras-go/v2/errdef"
)

// Target is one namespace of a mount as an oras-go v2 target
// (content.Storage plus Tag and Resolve), made only of file operations on
// the mount, so that oras.Copy from a registry or an OCI layout into it is
// a pull or an import:
//
//	Exists   stat ns/N/blobs/sha256/<hex>
//	Fetch    open ns/N/blobs/sha256/<hex>
//	Push     open(O_CREAT|O_EXCL) ns/N/blobs/sha256/<hex>, write, fsync, close
//	Tag      write the manifest's bytes to ns/N/images/<ref>
//	Resolve  read ns/N/images/<ref>
//
// The filesystem verifies every blob against its name, so Push needs no
// second check of the digest. Manifests and indexes are blobs too.
type Target struct {
	ns Namespace
}

var _ oras.Target = (*Target)(nil)

// Target is n as an oras-go target. It does not create the namespace
// (Ensure does).
func (n Namespace) Target() *Target { return &Target{ns: n} }

// Namespace is the namespace t works on.
func (t *Target) Namespace() Namespace { return t.ns }

// BlobPath is the file of blob d in t's namespace. A digest of another
// algorithm than sha256, or a malformed one, is an error.
func (t *Target) BlobPath(d digest.Digest) (string, error) {
	if err := t.ns.Check(); err != nil {
		return "", err
	}
	if err := d.Validate(); err != nil {
		return "", errors.Wrapf(errdef.ErrInvalidDigest, "digest %q: %v", d, err)
	}
	if d.Algorithm() != digest.SHA256 {
		return "", errors.Wrapf(errdef.ErrUnsupported, "digest %s: only sha256 blobs can be stored", d)
	}
	return filepath.Join(t.ns.BlobsDir(), d.Encoded()), nil
}

// ImagePath is the file of image ref in t's namespace; a '/' in ref is a
// sub-directory of images/. A ref the store would refuse
// (names.ValidateRef) is errdef.ErrInvalidReference, before it becomes a
// path.
func (t *Target) ImagePath(ref string) (string, error) {
	if err := t.ns.Check(); err != nil {
		return "", err
	}
	if problem := names.RefProblem(ref); problem != "" {
		return "", errors.Wrapf(errdef.ErrInvalidReference, "image %q: %s", ref, problem)
	}
	return filepath.Join(t.ns.ImagesDir(), filepath.FromSlash(ref)), nil
}

// Exists tells whether the namespace can see blob desc (under the shared
// policy: whether the store holds it), complete and with the size desc
// says. A blob still being written answers stat already (with the bytes it
// has so far) but cannot be opened until its writer commits it, so Exists
// opens it rather than stats it: a blob whose last bytes are written but
// not yet fsynced is not there yet.
func (t *Target) Exists(_ context.Context, desc ocispec.Descriptor) (bool, error) {
	path, err := t.BlobPath(desc.Digest)
	if err != nil {
		return false, err
	}
	state, size, err := blobStateOf(path)
	if err != nil {
		return false, errors.Wrapf(err, "blob %s in namespace %q", desc.Digest, t.ns.Name)
	}
	// Another size is a descriptor that lies: the blob is not there as
	// desc says, and Push says so.
	return state == blobCommitted && size == desc.Size, nil
}

// blobState is what the name of a blob stands for in a namespace.
type blobState int

const (
	blobAbsent    blobState = iota // the namespace cannot see it
	blobWriting                    // someone is writing it: it answers stat, not open
	blobCommitted                  // stored, readable
)

// blobStateOf tells apart a committed blob, one being written and none,
// with the size stat or fstat gives.
func blobStateOf(path string) (blobState, int64, error) {
	f, err := os.Open(path)
	if err == nil {
		fi, err := f.Stat()
		f.Close()
		if err != nil {
			return blobAbsent, 0, err
		}
		return blobCommitted, fi.Size(), nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return blobAbsent, 0, err
	}
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return blobAbsent, 0, nil
	case err != nil:
		return blobAbsent, 0, err
	}
	return blobWriting, fi.Size(), nil
}

// Fetch opens blob desc for reading.
func (t *Target) Fetch(_ context.Context, desc ocispec.Descriptor) (io.ReadCloser, error) {
	path, err := t.BlobPath(desc.Digest)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, errors.Wrapf(errdef.ErrNotFound, "blob %s in namespace %q", desc.Digest, t.ns.Name)
	}
	if err != nil {
		return nil, errors.Wrapf(err, "blob %s in namespace %q", desc.Digest, t.ns.Name)
	}
	return f, nil
}

// Push writes blob desc from r: O_CREAT|O_EXCL, copy, fsync, close. The
// filesystem publishes it only once its bytes hash to its name; an error
// (or a cancelled ctx) on the way leaves nothing visible. When the
// namespace can already see the blob, nothing is read from r and the
// error is errdef.ErrAlreadyExists, which oras.Copy takes as success.
//
// When another process is writing the same blob into the namespace (a
// second pull of the same image), its name answers and O_EXCL fails:
// Push then waits, as containerd does, until that writer has committed
// the blob (ErrAlreadyExists) or given up (the name is gone: Push writes
// it itself), or ctx is done. Nothing is read from r while it waits.
func (t *Target) Push(ctx context.Context, desc ocispec.Descriptor, r io.Reader) error {
	return t.push(ctx, desc, r, nil)
}

// push is Push; onWait, if set, is called once if it waits for another
// writer.
func (t *Target) push(ctx context.Context, desc ocispec.Descriptor, r io.Reader, onWait func()) error {
	path, err := t.BlobPath(desc.Digest)
	if err != nil {
		return err
	}
	what := func() string { return "blob " + desc.Digest.String() + " in namespace " + strconv.Quote(t.ns.Name) }
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o444)
	for again := false; errors.Is(err, syscall.EEXIST); again = true {
		if again {
			// The name refused O_EXCL, yet neither opens nor stats: an
			// entry of a writer that gave up, which the kernel forgets
			// in a moment. Do not spin on it.
			if err := sleepCtx(ctx, awaitWriterMaxPoll); err != nil {
				return errors.Wrapf(err, "%s", what())
			}
		}
		committed, werr := t.awaitWriter(ctx, desc, path, onWait)
		onWait = nil
		if werr != nil {
			return werr
		}
		if committed {
			return errors.Wrapf(errdef.ErrAlreadyExists, "%s", what())
		}
		f, err = os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o444)
	}
	if err != nil {
		return errors.Wrapf(err, "%s", what())
	}
	// An error before the fsync closes the file with bytes that do not
	// match its name: the filesystem keeps nothing (EBADMSG at close, which
	// says nothing more than the first error).
	src := &ctxReader{ctx: ctx, r: io.LimitReader(r, desc.Size+1)}
	n, rerr, werr := copyInFullWrites(f, src)
	switch {
	case rerr != nil:
		f.Close()
		return errors.Wrapf(rerr, "receiving %s (got %d of %d bytes)", what(), n, desc.Size)
	case werr != nil:
		f.Close()
		return errors.Wrapf(werr, "writing %s", what())
	case n != desc.Size:
		f.Close()
		return errors.Errorf("%s: got %d bytes, but its descriptor says %d", what(), n, desc.Size)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return blobCommitError(what(), err)
	}
	if err := f.Close(); err != nil {
		return blobCommitError(what(), err)
	}
	return nil
}

// fullWriteSize is the mount's MaxWrite: the most one FUSE WRITE carries.
const fullWriteSize = 1 << 20

// copyInFullWrites copies src to w in writes of fullWriteSize bytes (the
// last may be shorter), reading the next chunk from src while w takes the
// last one. Each write to the mount is a round trip to the daemon, which
// hashes and stores the chunk before it answers: a socket's reads return
// what has arrived, often 64 KiB, and io.Copy would pass each on as a
// write of its own and leave the socket unread while the daemon works.
// It returns the bytes written and src's error (not io.EOF) or w's. After
// w fails it returns at once: a read in progress ends on its own (at the
// latest when the caller closes src) and its goroutine then exits.
func copyInFullWrites(w io.Writer, src io.Reader) (written int64, readErr, writeErr error) {
	type chunk struct {
		buf []byte
		err error // src's error after buf: io.EOF at the end
	}
	const depth = 2 // chunks read ahead of the one being written
	filled := make(chan chunk, depth)
	free := make(chan []byte, depth+1)
	for i := 0; i < depth+1; i++ {
		free <- make([]byte, fullWriteSize)
	}
	done := make(chan struct{})
	defer close(done)
	go func() {
		for {
			var buf []byte
			select {
			case buf = <-free:
			case <-done:
				return
			}
			n, err := 0, error(nil)
			for n < len(buf) && err == nil {
				var k int
				k, err = src.Read(buf[n:])
				n += k
			}
			select {
			case filled <- chunk{buf[:n], err}:
			case <-done:
				return
			}
			if err != nil {
				return
			}
		}
	}()
	for c := range filled {
		if len(c.buf) > 0 {
			n, err := w.Write(c.buf)
			written += int64(n)
			if err != nil {
				return written, nil, err
			}
		}
		if c.err == io.EOF {
			return written, nil, nil
		}
		if c.err != nil {
			return written, c.err, nil
		}
		free <- c.buf[:cap(c.buf)]
	}
	panic("unreachable: the reader ends with an error")
}

// Polling bounds of awaitWriter: a small blob is committed within
// milliseconds; a big one may take minutes, and needs no faster answer
// than a few times a second.
const (
	awaitWriterFirstPoll = 5 * time.Millisecond
	awaitWriterMaxPoll   = 250 * time.Millisecond
)

// awaitWriter waits while blob desc (at path) answers stat but cannot be
// opened: another process is writing it. It returns true once the blob
// is committed with the size desc says, false once its name is gone (the
// writer gave up, or the name was never more than a stale entry), and an
// error for a committed blob of another size or when ctx is done. onWait,
// if set, is called before the first wait.
func (t *Target) awaitWriter(ctx context.Context, desc ocispec.Descriptor, path string, onWait func()) (bool, error) {
	poll := awaitWriterFirstPoll
	for {
		state, size, err := blobStateOf(path)
		if err != nil {
			return false, errors.Wrapf(err, "blob %s in namespace %q", desc.Digest, t.ns.Name)
		}
		switch state {
		case blobAbsent:
			return false, nil
		case blobCommitted:
			if size != desc.Size {
				return false, errors.Errorf("blob %s in namespace %q has %d bytes, but its descriptor says %d", desc.Digest, t.ns.Name, size, desc.Size)
			}
			return true, nil
		}
		if onWait != nil {
			onWait()
			onWait = nil
		}
		if err := sleepCtx(ctx, poll); err != nil {
			return false, errors.Wrapf(err, "waiting for another writer of blob %s in namespace %q", desc.Digest, t.ns.Name)
		}
		poll = min(2*poll, awaitWriterMaxPoll)
	}
}

// sleepCtx waits d, or less if ctx is done first (its error).
func sleepCtx(ctx context.Context, d time.Duration) error {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return nil
	}
}

// blobCommitError says why the filesystem refused a blob at fsync or close.
func blobCommitError(what string, err error) error {
	if errors.Is(err, syscall.EBADMSG) {
		return errors.Errorf("%s: the bytes do not match the digest", what)
	}
	return errors.Wrapf(err, "committing %s", what)
}

// Tag makes ref an image of the namespace whose target is desc: the
// manifest's bytes (read from the namespace's blob) are written to
// images/<ref>, creating the ref's prefix directories. The filesystem
// checks them at fsync and close; a blob the manifest names that the
// namespace cannot see is ENOENT (an index's absent children are fine).
func (t *Target) Tag(ctx context.Context, desc ocispec.Descriptor, ref string) error {
	path, err := t.ImagePath(ref)
	if err != nil {
		return err
	}
	// Verified: the bytes written are the ones desc names.
	data, err := imagegraph.Fetch(ctx, t, desc)
	if err != nil {
		return errors.WithMessagef(err, "reading manifest %s in namespace %q", desc.Digest, t.ns.Name)
	}
	return t.WriteImage(ref, path, data)
}

// WriteImage writes data, a manifest or index, to images/<ref> (at path,
// from ImagePath), making the ref's prefix directories: create or
// truncate, write, fsync, close. An error at fsync or close is the
// filesystem refusing the image.
func (t *Target) WriteImage(ref, path string, data []byte) error {
	what := "image " + strconv.Quote(ref) + " in namespace " + strconv.Quote(t.ns.Name)
	var f *os.File
	// A pull of another ref under the same prefix that fails removes the
	// empty directories it made, which may be ours between the two calls:
	// make them again.
	for attempt := 0; ; attempt++ {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return errors.Wrapf(err, "%s: creating its directory", what)
		}
		var err error
		f, err = os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.ENOENT) || attempt == 2 {
			return errors.Wrapf(err, "%s", what)
		}
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return imageCommitError(what, err)
	}
	// The close commits the image, durably, and fails as an fsync would:
	// an fsync first would cost a round trip to the daemon for nothing.
	if err := f.Close(); err != nil {
		return imageCommitError(what, err)
	}
	return nil
}

// imageCommitError says why the filesystem refused an image's bytes.
func imageCommitError(what string, err error) error {
	switch {
	case errors.Is(err, syscall.ENOENT):
		return errors.Errorf("%s: the manifest names a blob the namespace cannot see", what)
	case errors.Is(err, syscall.EINVAL):
		return errors.Errorf("%s: not a valid OCI or Docker manifest or index", what)
	case errors.Is(err, syscall.EFBIG):
		return errors.Errorf("%s: the manifest is larger than 4 MiB", what)
	}
	return errors.Wrapf(err, "writing %s", what)
}

// Resolve reads image ref and describes its target: digest and size of the
// file's bytes, media type from their JSON.
func (t *Target) Resolve(_ context.Context, ref string) (ocispec.Descriptor, error) {
	path, err := t.ImagePath(ref)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return ocispec.Descriptor{}, errors.Wrapf(errdef.ErrNotFound, "image %q in namespace %q", ref, t.ns.Name)
	}
	if err != nil {
		return ocispec.Descriptor{}, errors.Wrapf(err, "image %q in namespace %q", ref, t.ns.Name)
	}
	return imageDescriptor(data), nil
}

// ctxReader stops a copy once ctx is done, so that an interrupted pull
// stops writing at once.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
