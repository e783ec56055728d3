package client

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/nsfs/nsfs/imagegraph"
	"github.com/nsfs/nsfs/names"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/pkg/errors"
)

// Image is an image of a namespace as `nsfs images ls` shows it.
type Image struct {
	// Ref is the image's name: its path below images/.
	Ref string
	// MediaType is the media type of the target (a manifest or an index).
	MediaType string
	// Digest is the sha256 of the image file's bytes: the target's digest.
	Digest digest.Digest
	// Size is what the namespace holds of the image: the target, and the
	// manifests, configs and layers below it that are in blobs/sha256.
	Size int64
	// Platforms are os/arch[/variant], sorted: from the config of a
	// manifest, or from the entries of an index.
	Platforms []string
	// Labels are the image file's user.* xattrs.
	Labels map[string]string
	// Incomplete: the namespace cannot see every blob the image needs
	// (for the host platform); CheckImages says which.
	Incomplete bool
}

// maxConfigSize bounds what the listing reads of an image config for its
// platform (manifests and indexes are bounded by the image graph's limit).
const maxConfigSize = 16 << 20

// Images lists the images of namespace n, sorted by ref. A namespace that
// does not exist is an error (CheckExists).
func (n Namespace) Images() ([]Image, error) {
	if err := n.CheckExists(); err != nil {
		return nil, err
	}
	refs, err := n.refs()
	if err != nil {
		return nil, err
	}
	if len(refs) == 0 {
		return nil, nil
	}
	held, err := n.heldBlobs()
	if err != nil {
		return nil, err
	}
	var images []Image
	for _, ref := range refs {
		img, err := n.image(ref, held)
		if errors.Is(err, fs.ErrNotExist) {
			continue // removed since the listing
		}
		if err != nil {
			return nil, err
		}
		if img.Incomplete, err = n.incomplete(ref); errors.Is(err, ErrNotFound) {
			continue // removed since the listing
		} else if err != nil {
			return nil, err
		}
		images = append(images, img)
	}
	return images, nil
}

// Refs lists the refs of namespace n, sorted, without opening an image
// (`nsfs images ls -q`: a walk of images/ only).
func (n Namespace) Refs() ([]string, error) {
	if err := n.CheckExists(); err != nil {
		return nil, err
	}
	return n.refs()
}

// refs lists the refs below images/, sorted as strings (a walk's order
// puts "a/b" before "a-c").
func (n Namespace) refs() ([]string, error) {
	root := n.ImagesDir()
	var refs []string
	err := filepath.WalkDir(root, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // the namespace, or a prefix, went away
			}
			return err
		}
		if e.Type().IsRegular() {
			rel, err := filepath.Rel(root, p)
			if err != nil {
				return err
			}
			refs = append(refs, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		return nil, errors.Wrapf(err, "listing the images of namespace %q", n.Name)
	}
	sort.Strings(refs)
	return refs, nil
}

// heldBlobs is the set of hex digests in blobs/sha256: what the namespace
// holds. (Under shared content a stat succeeds for any blob of the store,
// so only the listing tells.)
func (n Namespace) heldBlobs() (map[string]bool, error) {
	entries, err := os.ReadDir(n.BlobsDir())
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, errors.Wrapf(err, "listing the blobs of namespace %q", n.Name)
	}
	held := make(map[string]bool, len(entries))
	for _, e := range entries {
		held[e.Name()] = true
	}
	return held, nil
}

// image reads one image: its file's bytes, labels, and the blobs below it.
func (n Namespace) image(ref string, held map[string]bool) (Image, error) {
	p := filepath.Join(n.ImagesDir(), filepath.FromSlash(ref))
	data, err := os.ReadFile(p)
	if err != nil {
		return Image{}, errors.Wrapf(err, "image %q", ref)
	}
	labels, err := readLabels(p)
	if err != nil {
		return Image{}, errors.Wrapf(err, "image %q", ref)
	}
	img := Image{
		Ref:    ref,
		Digest: digest.FromBytes(data),
		Labels: labels,
	}
	w := imageWalk{t: n.Target(), held: held, seen: map[digest.Digest]bool{}, platforms: map[string]bool{}}
	w.count(img.Digest, int64(len(data)))
	// The filesystem accepted the bytes as a manifest or index.
	if doc, err := imagegraph.Parse(data); err == nil {
		img.MediaType = doc.MediaType
		w.walk(doc)
	}
	img.Size = w.size
	for p := range w.platforms {
		img.Platforms = append(img.Platforms, p)
	}
	sort.Strings(img.Platforms)
	return img, nil
}

// imageWalk adds up what a namespace holds of one image and collects the
// image's platforms.
type imageWalk struct {
	t         *Target
	held      map[string]bool
	seen      map[digest.Digest]bool
	size      int64
	platforms map[string]bool
}

// count adds blob d of size bytes once, if the namespace holds it.
func (w *imageWalk) count(d digest.Digest, size int64) {
	if w.seen[d] || d.Algorithm() != digest.SHA256 || !w.held[d.Encoded()] {
		return
	}
	w.seen[d] = true
	w.size += size
}

// walk counts every blob of the graph below root (imagegraph.Walk: as
// deep as the filesystem claims blobs), and collects the platforms: those
// an index's entries name, else those of the manifests' configs.
func (w *imageWalk) walk(root imagegraph.Document) {
	ctx := context.Background()
	if !root.IsIndex() {
		w.configPlatform(ctx, root.Children[0].Descriptor)
	}
	_ = imagegraph.Walk(ctx, w.t, root, func(parent imagegraph.Document, c imagegraph.Child, _ int, doc *imagegraph.Document) error {
		w.count(c.Digest, c.Size)
		switch {
		case !parent.IsIndex():
		case c.Platform != nil:
			// The entry names its platform; a manifest below it would
			// only repeat it, but its blobs still count.
			if c.Platform.OS != "unknown" && c.Platform.Architecture != "unknown" {
				w.platforms[FormatPlatform(*c.Platform)] = true
			}
		case doc != nil && !doc.IsIndex():
			w.configPlatform(ctx, doc.Children[0].Descriptor)
		}
		return nil
	})
}

// configPlatform adds os/arch[/variant] of an image config, when the
// namespace can read it.
func (w *imageWalk) configPlatform(ctx context.Context, desc ocispec.Descriptor) {
	data, err := imagegraph.FetchLimited(ctx, w.t, desc, maxConfigSize)
	if err != nil {
		return
	}
	var cfg ocispec.Image
	if json.Unmarshal(data, &cfg) != nil || cfg.OS == "" || cfg.Architecture == "" {
		return
	}
	w.platforms[FormatPlatform(normalizePlatform(cfg.Platform))] = true
}

// RefPath is the file of image ref in namespace n. A ref must be valid by
// names.ValidateRef, the store's own rule: a clean relative path, so that
// it can name no file outside images/.
func (n Namespace) RefPath(ref string) (string, error) {
	if problem := names.RefProblem(ref); problem != "" {
		if !isCleanRelative(ref) {
			problem = `a ref must be a clean relative path (no empty, "." or ".." component)`
		}
		return "", withKind(ErrInvalid, "image %q: invalid reference: %s", ref, problem)
	}
	return filepath.Join(n.ImagesDir(), filepath.FromSlash(ref)), nil
}

// isCleanRelative: ref is a path without an empty, "." or ".." component,
// the part of the rule most refused refs break, said in one sentence.
func isCleanRelative(ref string) bool {
	return ref != "" && !strings.HasPrefix(ref, "/") && path.Clean(ref) == ref && ref != "." && ref != ".." && !strings.HasPrefix(ref, "../")
}

// RemoveImage deletes image ref (`rm images/<ref>`); the filesystem then
// drops the blobs only it held. A missing ref is ErrNotFound, and so is a
// ref-prefix directory, said as such.
func (n Namespace) RemoveImage(ref string) error {
	if err := n.CheckExists(); err != nil {
		return err
	}
	p, err := n.RefPath(ref)
	if err != nil {
		return err
	}
	// unlink, not os.Remove: that would rmdir a ref-prefix directory.
	return n.imageError(ref, syscall.Unlink(p))
}

// TagImage makes dst a second ref to src's target, with a copy of its
// labels (`ln images/<src> images/<dst>`), as `ctr images tag` does. An
// existing dst is ErrAlreadyExists unless force, which replaces it
// atomically: the link goes to a temporary ref that is renamed over dst.
// A ref-prefix directory is neither a src nor a dst, even with force.
func (n Namespace) TagImage(src, dst string, force bool) error {
	if err := n.CheckExists(); err != nil {
		return err
	}
	srcPath, err := n.RefPath(src)
	if err != nil {
		return err
	}
	dstPath, err := n.RefPath(dst)
	if err != nil {
		return err
	}
	// Before Ensure: a tag of nothing must not create the namespace.
	if st, err := os.Lstat(srcPath); err != nil || !st.Mode().IsRegular() {
		if err := n.refShapeError(src); err != nil {
			return err
		}
		return withKind(ErrNotFound, "image %q: not found", src)
	}
	if err := n.Ensure(); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dstPath), 0o755); err != nil {
		return n.imageError(dst, err)
	}
	err = os.Link(srcPath, dstPath)
	if err != nil && errors.Is(err, fs.ErrExist) {
		if err := n.refShapeError(dst); err != nil {
			return err // a directory of refs: --force must not replace it
		}
	}
	if err == nil || !errors.Is(err, fs.ErrExist) || !force {
		return n.tagError(src, dst, err)
	}
	tmp := filepath.Join(filepath.Dir(dstPath), fmt.Sprintf(".nsfs-tag-%d-%d", os.Getpid(), time.Now().UnixNano()))
	if err := os.Link(srcPath, tmp); err != nil {
		return n.tagError(src, dst, err)
	}
	if err := os.Rename(tmp, dstPath); err != nil {
		_ = syscall.Unlink(tmp)
		return n.imageError(dst, err)
	}
	return nil
}

// tagError names the ref a failed link was about.
func (n Namespace) tagError(src, dst string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, fs.ErrExist):
		return withKind(ErrAlreadyExists, "image %q: already exists", dst)
	case errors.Is(err, fs.ErrNotExist):
		return withKind(ErrNotFound, "image %q: not found", src)
	}
	return n.imageError(dst, err)
}

// imageError turns the filesystem's answer about image ref into ctr's
// words; a ref that is a directory of refs, or lies below an image, is
// said to be one.
func (n Namespace) imageError(ref string, err error) error {
	var errno syscall.Errno
	if err == nil || !errors.As(err, &errno) {
		if err == nil {
			return nil
		}
		return errors.Wrapf(err, "image %q", ref)
	}
	switch errno {
	case syscall.EISDIR, syscall.ENOTDIR, syscall.EEXIST:
		if shapeErr := n.refShapeError(ref); shapeErr != nil {
			return shapeErr
		}
	}
	switch errno {
	case syscall.ENOENT, syscall.EISDIR, syscall.ENOTDIR:
		return withKind(ErrNotFound, "image %q: not found", ref)
	case syscall.EEXIST:
		return withKind(ErrAlreadyExists, "image %q: already exists", ref)
	case syscall.EINVAL, syscall.ENAMETOOLONG:
		return withKind(ErrInvalid, "image %q: invalid reference: %v", ref, errno)
	}
	return errors.Wrapf(errno, "image %q", ref)
}

// refShapeError says why ref cannot be an image of the namespace, when
// its path is a ref prefix (a directory of refs: "docker.io/library") or
// lies below an image ("app:v1/x" when app:v1 is an image); nil when it
// is neither.
//
//	"docker.io/library" is a ref prefix (a directory of refs), not an image
//	image "app:v1/x": invalid reference: a prefix of it, "app:v1", is an image
func (n Namespace) refShapeError(ref string) error {
	p, err := n.RefPath(ref)
	if err != nil {
		return err
	}
	if st, err := os.Lstat(p); err == nil && st.IsDir() {
		return withKind(ErrInvalid, "%q is a ref prefix (a directory of refs), not an image", ref)
	}
	if prefix := n.imagePrefix(ref); prefix != "" {
		return withKind(ErrInvalid, "image %q: invalid reference: a prefix of it, %q, is an image", ref, prefix)
	}
	return nil
}

// imagePrefix is the shortest proper prefix of ref (whole components)
// that is an image of the namespace, "" when none is.
func (n Namespace) imagePrefix(ref string) string {
	parts := strings.Split(ref, "/")
	for i := 1; i < len(parts); i++ {
		prefix := strings.Join(parts[:i], "/")
		st, err := os.Lstat(filepath.Join(n.ImagesDir(), filepath.FromSlash(prefix)))
		if err != nil {
			return "" // nothing there, so nothing below either
		}
		if st.Mode().IsRegular() {
			return prefix
		}
	}
	return ""
}

// imageDescriptor describes the bytes of an image file: their digest and
// size, and the media type of the manifest or index they hold, as the
// filesystem decided when it accepted them ("" when they do not parse:
// the file changed under the reader).
func imageDescriptor(data []byte) ocispec.Descriptor {
	desc := ocispec.Descriptor{Digest: digest.FromBytes(data), Size: int64(len(data))}
	if doc, err := imagegraph.Parse(data); err == nil {
		desc.MediaType = doc.MediaType
	}
	return desc
}
