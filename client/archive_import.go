package client

import (
	"context"
	"io"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/pkg/errors"
	"oras.land/oras-go/v2/errdef"
)

// Import: check the archive's plan, send the blobs the namespace cannot
// see, then write the images, putting them back on a failure.

// ImportOptions are ctr import's options that nsfs has.
type ImportOptions struct {
	// BaseName is ctr import's --base-name: the repository that an OCI
	// ref name that is only a tag ("latest") is put in (BaseName:latest);
	// when it is set, images whose ref name is a full reference outside
	// it are left out. Empty: "import-<date>", and nothing is left out.
	BaseName string
	// Now dates the default base name; zero means time.Now().
	Now time.Time
}

// ImportResult says what an import did.
type ImportResult struct {
	// Images are the images written, in the archive's order.
	Images []ArchiveImage
	// Sent is the number of blob bytes written to the namespace: those of
	// the blobs it could not see yet (0 for a second import).
	Sent int64
}

// Import reads an image archive from r — an OCI image-layout tar
// (oci-layout, index.json, blobs/sha256/…) or a `docker save` archive
// (manifest.json naming configs and layer tars), told apart by the files
// it holds; either may be gzipped — and writes its images into the
// namespace, which it creates first when it is missing. r may be a pipe:
// what is not a regular file is first spooled to an unlinked temporary
// file in os.TempDir().
//
// The images' refs follow ctr import: an OCI index.json entry is named by
// its io.containerd.image.name annotation, else by its
// org.opencontainers.image.ref.name (a bare tag goes into the base name,
// see ImportOptions); a docker save image by each of its RepoTags,
// normalized ("redis:latest" → "docker.io/library/redis:latest"). An image
// with no name at all gets "<base name>@<digest>", as ctr import --digests
// names images.
func (n Namespace) Import(ctx context.Context, r io.Reader, opts ImportOptions) (ImportResult, error) {
	f, cleanup, err := seekableArchive(ctx, r)
	if err != nil {
		return ImportResult{}, err
	}
	defer cleanup()
	arch, err := scanArchive(ctx, f)
	if err != nil {
		return ImportResult{}, err
	}
	prefix := opts.BaseName
	if prefix == "" {
		now := opts.Now
		if now.IsZero() {
			now = time.Now()
		}
		prefix = "import-" + now.Format(defaultImportPrefixLayout)
	}
	plan, err := arch.plan(prefix, opts.BaseName != "")
	if err != nil {
		return ImportResult{}, err
	}
	if err := n.checkImageRefs(plan.images); err != nil {
		return ImportResult{}, err
	}
	if err := n.Ensure(); err != nil {
		return ImportResult{}, err
	}
	t := n.Target()
	sent, err := plan.push(ctx, t)
	if err != nil {
		return ImportResult{}, err
	}
	if err := plan.tag(ctx, t); err != nil {
		return ImportResult{}, err
	}
	return ImportResult{Images: plan.images, Sent: sent}, nil
}

// checkImageRefs refuses, before anything is written, image refs that
// cannot be written: one below another image of the archive ("x/y" with
// "x"), a ref-prefix directory of the namespace, or one below an image
// of the namespace.
func (n Namespace) checkImageRefs(images []ArchiveImage) error {
	refs := make(map[string]bool, len(images))
	for _, img := range images {
		refs[img.Ref] = true
	}
	for _, img := range images {
		parts := strings.Split(img.Ref, "/")
		for i := 1; i < len(parts); i++ {
			if prefix := strings.Join(parts[:i], "/"); refs[prefix] {
				return withKind(ErrInvalid, "image %q: invalid reference: a prefix of it, %q, is also an image of the archive", img.Ref, prefix)
			}
		}
		if err := n.refShapeError(img.Ref); err != nil {
			return err
		}
	}
	return nil
}

// push sends every blob of the plan the namespace cannot see yet: layers
// and configs a few at a time, then the manifests and indexes, each after
// what it names. It returns the bytes sent.
func (p *importPlan) push(ctx context.Context, t *Target) (int64, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu       sync.Mutex
		sent     int64
		firstErr error
		wg       sync.WaitGroup
		work     = make(chan planBlob)
	)
	send := func(b planBlob) error {
		err := t.Push(ctx, b.desc, p.open(b))
		if errors.Is(err, errdef.ErrAlreadyExists) {
			return nil
		}
		if err != nil {
			return err
		}
		mu.Lock()
		sent += b.desc.Size
		mu.Unlock()
		return nil
	}
	fail := func(err error) {
		mu.Lock()
		if firstErr == nil {
			firstErr = err
			cancel()
		}
		mu.Unlock()
	}
	for i := 0; i < importPushConcurrency; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range work {
				if err := send(b); err != nil {
					fail(err)
				}
			}
		}()
	}
	for _, d := range p.order {
		if b := p.blobs[d]; !b.manifest {
			select {
			case work <- b:
			case <-ctx.Done():
			}
		}
	}
	close(work)
	wg.Wait()
	if firstErr != nil {
		return sent, firstErr
	}
	if err := ctx.Err(); err != nil {
		return sent, err
	}
	for _, d := range p.order {
		if b := p.blobs[d]; b.manifest {
			if err := send(b); err != nil {
				return sent, err
			}
		}
	}
	return sent, nil
}

// tag writes the images. On a failure it puts back what it had changed:
// an image it created is removed, one it replaced gets its old bytes.
func (p *importPlan) tag(ctx context.Context, t *Target) error {
	var done []imageUndo
	for _, img := range p.images {
		imgPath, err := t.ImagePath(img.Ref)
		if err != nil {
			return p.rollback(t, done, err)
		}
		old, err := os.ReadFile(imgPath)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return p.rollback(t, done, errors.Wrapf(err, "image %q in namespace %q", img.Ref, t.Namespace().Name))
		}
		if err := t.Tag(ctx, img.Target, img.Ref); err != nil {
			if errors.Is(err, syscall.ENOTDIR) || errors.Is(err, syscall.EISDIR) || errors.Is(err, syscall.EEXIST) {
				// Made since checkImageRefs looked: say what is in the way.
				if shapeErr := t.Namespace().refShapeError(img.Ref); shapeErr != nil {
					err = shapeErr
				}
			}
			return p.rollback(t, done, err)
		}
		done = append(done, imageUndo{ref: img.Ref, path: imgPath, old: old})
	}
	return nil
}

// imageUndo is how to put back an image an import wrote.
type imageUndo struct {
	ref, path string
	old       []byte // nil: the image did not exist
}

// rollback undoes the image writes of a failed import, newest first, and
// returns the error that failed it.
func (p *importPlan) rollback(t *Target, done []imageUndo, cause error) error {
	for i := len(done) - 1; i >= 0; i-- {
		u := done[i]
		if u.old == nil {
			_ = os.Remove(u.path)
		} else {
			_ = t.WriteImage(u.ref, u.path, u.old)
		}
	}
	return cause
}
