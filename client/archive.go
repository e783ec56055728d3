package client

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nsfs/nsfs/imagegraph"
	"github.com/nsfs/nsfs/metadata"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/pkg/errors"
	"oras.land/oras-go/v2/errdef"
)

// Image archives: `nsfs images import` reads an OCI image-layout tar or a
// `docker save` archive into a namespace, `nsfs images export` writes
// images as an OCI image-layout tar that also carries Docker's
// manifest.json. Both work only through the mount, with the namespace's
// Target (stat, open, O_CREAT|O_EXCL writes of blobs/sha256/<hex>, writes
// of images/<ref>).
//
// Import verifies the whole archive before it writes anything: every blob
// an image needs is there with the bytes its digest names, and every ref
// is a valid nsfs ref. Then it sends the blobs the namespace cannot see
// yet, and only then writes the images. A failure while writing the images
// puts back the ones it had written (their old targets, or none), so a
// failed import leaves no image behind; blobs it had sent stay held by
// the namespace until `rm blobs/sha256/<hex>`, as a blob written without
// an image does.

// Media types and annotations an archive uses (beside pull.go's).
const (
	archiveDockerConfig       = "application/vnd.docker.container.image.v1+json"
	archiveDockerLayer        = "application/vnd.docker.image.rootfs.diff.tar"
	archiveDockerLayerGzip    = "application/vnd.docker.image.rootfs.diff.tar.gzip"
	annotationContainerdName  = "io.containerd.image.name"
	dockerManifestFile        = "manifest.json"
	maxArchiveJSON            = 20 << 20 // index.json, manifest.json (containerd's limit)
	importPushConcurrency     = 3
	archiveBlobMode           = 0o444
	archiveFileMode           = 0o644
	archiveDirMode            = 0o755
	gzipMagic0, gzipMagic1    = 0x1f, 0x8b
	maxSymlinkHops            = 16
	defaultImportPrefixLayout = "2006-01-02"
)

// ArchiveImage is one image of an import or an export: its ref in the
// namespace and its target.
type ArchiveImage struct {
	Ref    string
	Target ocispec.Descriptor
}

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

// ImportFile is Import from the file at name, or from stdin when name is "-".
func (n Namespace) ImportFile(ctx context.Context, name string, opts ImportOptions) (ImportResult, error) {
	if name == "-" {
		return n.Import(ctx, os.Stdin, opts)
	}
	f, err := os.Open(name)
	if err != nil {
		// The caller names the file: "import x.tar: no such file or directory".
		return ImportResult{}, unwrapPath(err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.IsDir() {
		return ImportResult{}, withKind(ErrInvalid, "is a directory")
	}
	return n.Import(ctx, f, opts)
}

// unwrapPath is the error of a file operation without the path and the
// operation (*fs.PathError, *os.LinkError), for a message that names the
// file itself: the path may be a temporary file the user never named.
func unwrapPath(err error) error {
	var pe *fs.PathError
	var le *os.LinkError
	switch {
	case errors.As(err, &pe):
		return pe.Err
	case errors.As(err, &le):
		return le.Err
	}
	return err
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

// seekableArchive gives random access to the archive r: r itself when it
// is a regular file that is not gzipped, else a temporary copy
// (decompressed) that is already unlinked, so nothing is left behind.
func seekableArchive(ctx context.Context, r io.Reader) (io.ReaderAt, func(), error) {
	noop := func() {}
	if f, ok := r.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
			var magic [2]byte
			if n, _ := f.ReadAt(magic[:], 0); n < 2 || magic != [2]byte{gzipMagic0, gzipMagic1} {
				return io.NewSectionReader(f, 0, fi.Size()), noop, nil
			}
		}
	}
	br := bufio.NewReaderSize(r, 64<<10)
	src := io.Reader(br)
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == gzipMagic0 && magic[1] == gzipMagic1 {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, noop, errors.Wrap(err, "reading the gzipped archive")
		}
		defer zr.Close()
		src = zr
	}
	tmp, err := os.CreateTemp("", "nsfs-import-*.tar")
	if err != nil {
		return nil, noop, errors.Wrap(err, "spooling the archive")
	}
	// Unlinked at once: the descriptor keeps it while the import runs.
	os.Remove(tmp.Name())
	size, err := io.Copy(tmp, &ctxReader{ctx: ctx, r: src})
	if err != nil {
		tmp.Close()
		return nil, noop, errors.Wrapf(err, "spooling the archive to %s", os.TempDir())
	}
	return io.NewSectionReader(tmp, 0, size), func() { tmp.Close() }, nil
}

// tarEntry is a regular file of the archive: where its bytes are and
// what they hash to.
type tarEntry struct {
	name   string
	offset int64
	size   int64
	digest digest.Digest
}

// tarArchive is the table of contents of an archive, every regular file
// hashed.
type tarArchive struct {
	r        *io.SectionReader
	entries  map[string]tarEntry // by cleaned name
	links    map[string]string   // symlinks and hard links: cleaned name → cleaned target
	byDigest map[digest.Digest]tarEntry
}

// scanArchive reads the tar once, noting and hashing every regular file.
func scanArchive(ctx context.Context, ra io.ReaderAt) (*tarArchive, error) {
	sr, ok := ra.(*io.SectionReader)
	if !ok {
		return nil, errors.New("internal: the archive is not seekable")
	}
	a := &tarArchive{
		r:        sr,
		entries:  map[string]tarEntry{},
		links:    map[string]string{},
		byDigest: map[digest.Digest]tarEntry{},
	}
	counter := &offsetReader{r: sr}
	tr := tar.NewReader(counter)
	for i := 0; ; i++ {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			if i == 0 {
				return nil, errors.Errorf("not a tar archive (%v)", err)
			}
			return nil, errors.Wrap(err, "reading the tar archive")
		}
		name := path.Clean(strings.TrimPrefix(hdr.Name, "/"))
		switch hdr.Typeflag {
		case tar.TypeReg, tar.TypeRegA: //nolint:staticcheck // old tars still use TypeRegA
			e := tarEntry{name: name, offset: counter.off, size: hdr.Size}
			h := sha256.New()
			if _, err := io.Copy(h, &ctxReader{ctx: ctx, r: tr}); err != nil {
				return nil, errors.Wrapf(err, "reading %s from the tar archive", hdr.Name)
			}
			e.digest = digest.NewDigest(digest.SHA256, h)
			a.entries[name] = e
			if _, dup := a.byDigest[e.digest]; !dup {
				a.byDigest[e.digest] = e
			}
		case tar.TypeSymlink:
			a.links[name] = path.Join(path.Dir(name), hdr.Linkname)
		case tar.TypeLink:
			a.links[name] = path.Clean(strings.TrimPrefix(hdr.Linkname, "/"))
		}
	}
	return a, nil
}

// offsetReader counts how far the tar reader has read: after Next, the
// offset of the entry's bytes. Seek lets the tar reader skip without
// reading.
type offsetReader struct {
	r   *io.SectionReader
	off int64
}

func (o *offsetReader) Read(p []byte) (int, error) {
	n, err := o.r.Read(p)
	o.off += int64(n)
	return n, err
}

func (o *offsetReader) Seek(offset int64, whence int) (int64, error) {
	n, err := o.r.Seek(offset, whence)
	if err == nil {
		o.off = n
	}
	return n, err
}

// file finds a regular file by name, following links.
func (a *tarArchive) file(name string) (tarEntry, bool) {
	name = path.Clean(strings.TrimPrefix(name, "/"))
	for hops := 0; hops < maxSymlinkHops; hops++ {
		if e, ok := a.entries[name]; ok {
			return e, true
		}
		target, ok := a.links[name]
		if !ok {
			return tarEntry{}, false
		}
		name = target
	}
	return tarEntry{}, false
}

// has tells whether the archive holds a file (or link) of that name.
func (a *tarArchive) has(name string) bool {
	_, ok := a.entries[name]
	_, link := a.links[name]
	return ok || link
}

// readEntry reads a small file of the archive whole.
func (a *tarArchive) readEntry(e tarEntry, limit int64) ([]byte, error) {
	if e.size > limit {
		return nil, errors.Errorf("%s is %d bytes, over the %d-byte limit", e.name, e.size, limit)
	}
	data := make([]byte, e.size)
	if _, err := a.r.ReadAt(data, e.offset); err != nil && !(err == io.EOF && int64(len(data)) == e.size) {
		return nil, errors.Wrapf(err, "reading %s from the archive", e.name)
	}
	return data, nil
}

// importPlan is what an import will write: the blobs in an order where
// every manifest follows what it names, and the images.
type importPlan struct {
	arch    *tarArchive
	blobs   map[digest.Digest]planBlob
	visited map[digest.Digest]bool
	order   []digest.Digest // children before parents
	images  []ArchiveImage
}

// planBlob is where a blob's bytes come from: the archive, or memory (a
// manifest import made for a docker save image).
type planBlob struct {
	desc     ocispec.Descriptor
	entry    tarEntry
	data     []byte // when not from the archive
	manifest bool   // a manifest or index: written after what it names
}

// plan decides what to import and checks all of it: the archive's kind,
// every blob every image needs (present, of its digest and size), the
// manifests' JSON, and the refs. Nothing is written.
func (a *tarArchive) plan(prefix string, filterPrefix bool) (*importPlan, error) {
	p := &importPlan{arch: a, blobs: map[digest.Digest]planBlob{}, visited: map[digest.Digest]bool{}}
	var (
		roots []ocispec.Descriptor
		names []string
		err   error
	)
	switch {
	case a.has(ocispec.ImageLayoutFile):
		roots, names, err = a.ociImages(prefix, filterPrefix)
	case a.has(dockerManifestFile):
		roots, names, err = a.dockerImages(p)
	default:
		return nil, errors.New("neither an OCI image layout (no oci-layout and index.json) nor a docker save archive (no manifest.json)")
	}
	if err != nil {
		return nil, err
	}
	if len(roots) == 0 {
		if filterPrefix {
			return nil, errors.Errorf("the archive holds no image named in %s", prefix)
		}
		return nil, errors.New("the archive holds no image")
	}
	byRef := map[string]int{}
	for i, root := range roots {
		name := names[i]
		if name == "" {
			name = prefix + "@" + root.Digest.String()
		}
		if err := metadata.ValidateRef(name); err != nil {
			return nil, errors.Errorf("image %q of the archive cannot be an nsfs ref: %s", name, refProblem(name, err))
		}
		if !imagegraph.IsDocument(root.MediaType) {
			return nil, errors.Errorf("image %q: %s is a %q, not an image manifest or index", name, root.Digest, root.MediaType)
		}
		if _, err := p.need(root, fmt.Sprintf("image %q", name), true, 0); err != nil {
			return nil, err
		}
		target := ocispec.Descriptor{MediaType: root.MediaType, Digest: root.Digest, Size: root.Size}
		// A later entry of the same name wins, as a later tag does in ctr.
		if j, dup := byRef[name]; dup {
			p.images[j].Target = target
			continue
		}
		byRef[name] = len(p.images)
		p.images = append(p.images, ArchiveImage{Ref: name, Target: target})
	}
	return p, nil
}

// refProblem is what metadata.ValidateRef found wrong with ref, without
// the ref and the error kind that the caller's message already says.
func refProblem(ref string, err error) string {
	msg := strings.TrimSuffix(err.Error(), ": "+errors.Cause(err).Error())
	for _, prefix := range []string{fmt.Sprintf("image ref %q: ", ref), "image ref "} {
		msg = strings.TrimPrefix(msg, prefix)
	}
	return msg
}

// ociImages reads oci-layout and index.json: each entry of the index is an
// image, named as ctr import names it.
func (a *tarArchive) ociImages(prefix string, filterPrefix bool) ([]ocispec.Descriptor, []string, error) {
	le, ok := a.file(ocispec.ImageLayoutFile)
	if !ok {
		return nil, nil, errors.New("OCI image layout: oci-layout is not a regular file")
	}
	data, err := a.readEntry(le, maxArchiveJSON)
	if err != nil {
		return nil, nil, err
	}
	var layout ocispec.ImageLayout
	if err := json.Unmarshal(data, &layout); err != nil {
		return nil, nil, errors.Errorf("OCI image layout: oci-layout is not valid JSON: %v", err)
	}
	if layout.Version != ocispec.ImageLayoutVersion {
		return nil, nil, errors.Errorf("OCI image layout: version %q is not supported (only %s)", layout.Version, ocispec.ImageLayoutVersion)
	}
	ie, ok := a.file(ocispec.ImageIndexFile)
	if !ok {
		return nil, nil, errors.New("OCI image layout without index.json")
	}
	if data, err = a.readEntry(ie, maxArchiveJSON); err != nil {
		return nil, nil, err
	}
	index, err := imagegraph.Parse(data)
	if err != nil {
		return nil, nil, errors.Errorf("OCI image layout: index.json: %v", err)
	}
	if !index.IsIndex() {
		return nil, nil, errors.Errorf("OCI image layout: index.json is a %s, not an index", index.MediaType)
	}
	translate := ImportRefTranslator(prefix)
	var roots []ocispec.Descriptor
	var names []string
	for _, c := range index.Children {
		m := c.Descriptor
		name := m.Annotations[annotationContainerdName]
		if name == "" {
			if name = m.Annotations[ocispec.AnnotationRefName]; name != "" {
				if filterPrefix && strings.ContainsAny(name, "/:@") && !hasImagePrefix(name, prefix) {
					continue // ctr import --base-name imports only what is in it
				}
				name = translate(name)
			}
		}
		roots = append(roots, m)
		names = append(names, name)
	}
	return roots, names, nil
}

// hasImagePrefix tells whether ref is in repository prefix (ctr's isImagePrefix).
func hasImagePrefix(ref, prefix string) bool {
	if !strings.HasPrefix(ref, prefix) {
		return false
	}
	if len(ref) == len(prefix) {
		return true
	}
	switch ref[len(prefix)] {
	case '/', ':', '@':
		return true
	}
	return false
}

// dockerSaveImage is one entry of a docker save manifest.json.
type dockerSaveImage struct {
	Config   string
	RepoTags []string
	Layers   []string
}

// dockerImages reads manifest.json and makes, for each image, the Docker
// schema 2 manifest containerd's importer makes (the same bytes, so the
// same digest): config and layers as the archive holds them, a layer
// gzipped or not as its first bytes say. Each RepoTag is a name.
func (a *tarArchive) dockerImages(p *importPlan) ([]ocispec.Descriptor, []string, error) {
	me, ok := a.file(dockerManifestFile)
	if !ok {
		return nil, nil, errors.New("docker save archive: manifest.json is not a regular file")
	}
	data, err := a.readEntry(me, maxArchiveJSON)
	if err != nil {
		return nil, nil, err
	}
	var saved []dockerSaveImage
	if err := json.Unmarshal(data, &saved); err != nil {
		return nil, nil, errors.Errorf("docker save archive: manifest.json is not valid JSON: %v", err)
	}
	var roots []ocispec.Descriptor
	var names []string
	for i, img := range saved {
		what := fmt.Sprintf("docker save archive: image %d of manifest.json", i+1)
		if len(img.RepoTags) > 0 {
			what = fmt.Sprintf("docker save archive: image %s", strings.Join(img.RepoTags, ", "))
		}
		ce, ok := a.file(img.Config)
		if !ok {
			return nil, nil, errors.Errorf("%s: config %q is not in the archive", what, img.Config)
		}
		cfg, err := a.readEntry(ce, maxArchiveJSON)
		if err != nil {
			return nil, nil, errors.WithMessage(err, what)
		}
		if !json.Valid(cfg) {
			return nil, nil, errors.Errorf("%s: config %q is not valid JSON", what, img.Config)
		}
		m := dockerSchema2Manifest{
			SchemaVersion: 2,
			MediaType:     imagegraph.MediaTypeDockerManifest,
			Config:        ocispec.Descriptor{MediaType: archiveDockerConfig, Digest: ce.digest, Size: ce.size},
			Layers:        []ocispec.Descriptor{},
		}
		p.addEntry(m.Config, ce)
		for _, l := range img.Layers {
			le, ok := a.file(l)
			if !ok {
				return nil, nil, errors.Errorf("%s: layer %q is not in the archive", what, l)
			}
			mt := archiveDockerLayer
			var magic [2]byte
			if n, _ := a.r.ReadAt(magic[:], le.offset); n == 2 && le.size >= 2 && magic == [2]byte{gzipMagic0, gzipMagic1} {
				mt = archiveDockerLayerGzip
			}
			desc := ocispec.Descriptor{MediaType: mt, Digest: le.digest, Size: le.size}
			m.Layers = append(m.Layers, desc)
			p.addEntry(desc, le)
		}
		// containerd marshals this struct compactly; the same bytes give
		// the same digest as `ctr images import` of the same archive.
		mb, err := json.Marshal(m)
		if err != nil {
			return nil, nil, err
		}
		desc := ocispec.Descriptor{MediaType: imagegraph.MediaTypeDockerManifest, Digest: digest.FromBytes(mb), Size: int64(len(mb))}
		p.blobs[desc.Digest] = planBlob{desc: desc, data: mb, manifest: true}
		if len(img.RepoTags) == 0 {
			roots = append(roots, desc)
			names = append(names, "")
			continue
		}
		for _, tag := range img.RepoTags {
			name, err := NormalizeDockerRef(tag)
			if err != nil {
				return nil, nil, errors.WithMessage(err, what)
			}
			roots = append(roots, desc)
			names = append(names, name)
		}
	}
	return roots, names, nil
}

// dockerSchema2Manifest is the manifest made for a docker save image, in
// containerd's field order.
type dockerSchema2Manifest struct {
	SchemaVersion int                  `json:"schemaVersion"`
	MediaType     string               `json:"mediaType"`
	Config        ocispec.Descriptor   `json:"config"`
	Layers        []ocispec.Descriptor `json:"layers"`
}

// addEntry makes a file of a docker save archive a blob of the plan.
func (p *importPlan) addEntry(desc ocispec.Descriptor, e tarEntry) {
	if _, ok := p.blobs[desc.Digest]; !ok {
		p.blobs[desc.Digest] = planBlob{desc: desc, entry: e}
	}
}

// lookup finds blob desc: one the plan already has, else an OCI layout's
// blobs/sha256/<hex>, whose bytes must hash to its name.
func (p *importPlan) lookup(desc ocispec.Descriptor, role string) (planBlob, bool, error) {
	if b, ok := p.blobs[desc.Digest]; ok {
		return b, true, nil
	}
	if err := desc.Digest.Validate(); err != nil {
		return planBlob{}, false, errors.Errorf("%s: invalid digest %q: %v", role, desc.Digest, err)
	}
	if desc.Digest.Algorithm() != digest.SHA256 {
		return planBlob{}, false, errors.Errorf("%s: digest %s: only sha256 blobs can be imported", role, desc.Digest)
	}
	e, ok := p.arch.file(path.Join("blobs", "sha256", desc.Digest.Encoded()))
	if !ok {
		return planBlob{}, false, nil
	}
	if e.digest != desc.Digest {
		return planBlob{}, false, errors.Errorf("%s: blob %s in the archive does not match its digest (its bytes hash to %s)", role, desc.Digest, e.digest)
	}
	return planBlob{desc: desc, entry: e}, true, nil
}

// need adds blob desc, and everything it names, to the plan, children
// first. A required blob must be there; an index's manifests need not be
// (an image may come with some of its platforms). depth is how many
// indexes lie above desc. It reports whether desc is there.
func (p *importPlan) need(desc ocispec.Descriptor, role string, required bool, depth int) (bool, error) {
	if p.visited[desc.Digest] {
		return true, nil
	}
	if depth > imagegraph.MaxIndexDepth && imagegraph.IsDocument(desc.MediaType) {
		return false, errors.Errorf("%s: indexes nested more than %d deep", role, imagegraph.MaxIndexDepth)
	}
	b, ok, err := p.lookup(desc, role)
	if err != nil {
		return false, err
	}
	if !ok {
		if required {
			return false, errors.Errorf("%s: blob %s is not in the archive", role, desc.Digest)
		}
		return false, nil
	}
	size := b.entry.size
	if b.data != nil {
		size = int64(len(b.data))
	}
	if size != desc.Size {
		return false, errors.Errorf("%s: blob %s has %d bytes in the archive, but its descriptor says %d", role, desc.Digest, size, desc.Size)
	}
	b.desc = ocispec.Descriptor{MediaType: desc.MediaType, Digest: desc.Digest, Size: desc.Size}
	if imagegraph.IsDocument(desc.MediaType) {
		b.manifest = true
		if err := p.needChildren(b, role, depth); err != nil {
			return false, err
		}
	}
	p.visited[desc.Digest] = true
	p.blobs[desc.Digest] = b
	p.order = append(p.order, desc.Digest)
	return true, nil
}

// needChildren adds what the manifest or index b names to the plan: a
// manifest's config and layers, required (a foreign layer, with URLs, may
// live elsewhere), an index's manifests, not required.
func (p *importPlan) needChildren(b planBlob, role string, depth int) error {
	data := b.data
	if data == nil {
		var err error
		if data, err = p.arch.readEntry(b.entry, imagegraph.MaxDocumentSize); err != nil {
			return errors.WithMessage(err, role)
		}
	}
	doc, err := imagegraph.Parse(data)
	if err != nil {
		return errors.Errorf("%s: %s %s: %v", role, documentWord(b.desc.MediaType), b.desc.Digest, err)
	}
	childDepth := depth
	if doc.IsIndex() {
		childDepth++
	}
	for _, c := range doc.Children {
		required := !doc.IsIndex() && !c.Foreign
		if _, err := p.need(c.Descriptor, role+" "+c.Role, required, childDepth); err != nil {
			return err
		}
	}
	return nil
}

// documentWord names a manifest or index in messages, by its media type.
func documentWord(mt string) string {
	if imagegraph.IsIndex(mt) {
		return "index"
	}
	return "manifest"
}

// open reads blob b from where the plan found it.
func (p *importPlan) open(b planBlob) io.Reader {
	if b.data != nil {
		return bytes.NewReader(b.data)
	}
	return io.NewSectionReader(p.arch.r, b.entry.offset, b.entry.size)
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

// ExportOptions are the choices of an export.
type ExportOptions struct {
	// Platform picks, for an image that is an index, the manifest that
	// Docker's manifest.json names (Docker cannot name an index); empty
	// means the host's (runtime.GOOS/GOARCH). When no manifest of the
	// index matches, the first one the namespace holds is named.
	Platform ocispec.Platform
}

// ExportFile is Export into the file at name — written to a temporary
// file beside it and renamed, so a failed or interrupted export leaves no
// partial file — or to stdout when name is "-". Its errors do not name
// the file (the caller does: "export x.tar: no such file or directory"),
// nor the temporary file, which the user never named.
func (n Namespace) ExportFile(ctx context.Context, name string, refs []string, opts ExportOptions) error {
	if name == "-" {
		return n.Export(ctx, os.Stdout, refs, opts)
	}
	if fi, err := os.Stat(name); err == nil && fi.IsDir() {
		return withKind(ErrInvalid, "is a directory")
	}
	dir, base := filepath.Split(name)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return unwrapPath(err)
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	bw := bufio.NewWriterSize(writeErrorsOf{tmp}, 1<<20)
	if err := n.Export(ctx, bw, refs, opts); err != nil {
		tmp.Close()
		return err
	}
	if err := bw.Flush(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return errors.Wrap(unwrapPath(err), "writing the file")
	}
	if err := tmp.Close(); err != nil {
		return errors.Wrap(unwrapPath(err), "writing the file")
	}
	if err := os.Rename(tmp.Name(), name); err != nil {
		return errors.Wrap(unwrapPath(err), "writing the file")
	}
	return nil
}

// writeErrorsOf says "writing the file: no space left on device" for a
// failed write, without the temporary file's name.
type writeErrorsOf struct{ f *os.File }

func (w writeErrorsOf) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	if err != nil {
		err = errors.Wrap(unwrapPath(err), "writing the file")
	}
	return n, err
}

// exportGraph is what an export writes: blobs by digest (in a stable
// order), and for each exported manifest the names Docker's manifest.json
// gives it.
type exportGraph struct {
	t       *Target
	blobs   map[digest.Digest]ocispec.Descriptor
	parsed  map[digest.Digest]exportManifest
	missing map[digest.Digest]bool // children looked for and not complete
}

// exportManifest is a manifest or index the export read.
type exportManifest struct {
	config    *ocispec.Descriptor
	layers    []ocispec.Descriptor
	manifests []ocispec.Descriptor // of an index: those exported
}

// Export writes images refs of the namespace to w as an OCI image-layout
// tar (oci-layout, index.json, blobs/sha256/…) that also carries Docker's
// manifest.json, so that `docker load`, `ctr images import`,
// `skopeo copy oci-archive:` and `skopeo copy docker-archive:` all read
// it. index.json names each image with the annotations containerd's
// exporter writes: io.containerd.image.name (the ref) and
// org.opencontainers.image.ref.name (the part after the repository,
// "latest"). An index goes with the manifests of it the namespace holds
// whole. Everything is checked before the first byte is written; the
// output is the same bytes for the same images.
func (n Namespace) Export(ctx context.Context, w io.Writer, refs []string, opts ExportOptions) error {
	if len(refs) == 0 {
		return errors.New("no image to export: name at least one ref")
	}
	if _, err := os.Stat(n.Dir()); err != nil {
		return namespaceError(n.Name, err)
	}
	t := n.Target()
	g := &exportGraph{t: t, blobs: map[digest.Digest]ocispec.Descriptor{}, parsed: map[digest.Digest]exportManifest{}, missing: map[digest.Digest]bool{}}
	var index ocispec.Index
	index.SchemaVersion = 2
	index.MediaType = ocispec.MediaTypeImageIndex
	seen := map[string]bool{}
	type dockerEntry struct {
		manifest ocispec.Descriptor
		names    []string
	}
	var docker []*dockerEntry
	dockerByDigest := map[digest.Digest]*dockerEntry{}
	for _, ref := range refs {
		if seen[ref] {
			continue
		}
		seen[ref] = true
		if err := metadata.ValidateRef(ref); err != nil {
			return errors.Errorf("image %q: not an nsfs ref: %s", ref, refProblem(ref, err))
		}
		imgPath, err := t.ImagePath(ref)
		if err != nil {
			return err
		}
		data, err := os.ReadFile(imgPath)
		if errors.Is(err, os.ErrNotExist) {
			return errors.Errorf("image %q: not found in namespace %q", ref, n.Name)
		}
		if err != nil {
			return errors.Wrapf(err, "image %q in namespace %q", ref, n.Name)
		}
		desc := ocispec.Descriptor{MediaType: manifestMediaType(data), Digest: digest.FromBytes(data), Size: int64(len(data))}
		if err := g.add(ctx, desc, fmt.Sprintf("image %q", ref), true, 0); err != nil {
			return err
		}
		annotated := desc
		annotated.Annotations = map[string]string{
			annotationContainerdName:  ref,
			ocispec.AnnotationRefName: OCIRefName(ref),
		}
		index.Manifests = append(index.Manifests, annotated)

		// Docker's manifest.json: the manifest itself, or the index's
		// manifest for the platform.
		m := desc
		if imagegraph.IsIndex(desc.MediaType) {
			var ok bool
			if m, ok = g.dockerManifest(desc, opts.Platform, 0); !ok {
				continue
			}
		}
		e := dockerByDigest[m.Digest]
		if e == nil {
			e = &dockerEntry{manifest: m}
			dockerByDigest[m.Digest] = e
			docker = append(docker, e)
		}
		if tag, ok := FamiliarDockerRef(ref); ok {
			e.names = append(e.names, tag)
		}
	}

	indexJSON, err := json.Marshal(index)
	if err != nil {
		return err
	}
	saved := make([]dockerSaveImage, 0, len(docker))
	for _, e := range docker {
		pm := g.parsed[e.manifest.Digest]
		s := dockerSaveImage{Config: blobTarPath(pm.config.Digest), RepoTags: e.names, Layers: []string{}}
		if s.RepoTags == nil {
			s.RepoTags = []string{}
		}
		for _, l := range pm.layers {
			s.Layers = append(s.Layers, blobTarPath(l.Digest))
		}
		saved = append(saved, s)
	}
	manifestJSON, err := json.Marshal(saved)
	if err != nil {
		return err
	}
	layoutJSON, err := json.Marshal(ocispec.ImageLayout{Version: ocispec.ImageLayoutVersion})
	if err != nil {
		return err
	}

	// Sorted by name, as containerd's exporter writes them.
	digests := make([]digest.Digest, 0, len(g.blobs))
	for d := range g.blobs {
		digests = append(digests, d)
	}
	sort.Slice(digests, func(i, j int) bool { return digests[i] < digests[j] })
	tw := tar.NewWriter(w)
	epoch := time.Unix(0, 0)
	for _, dir := range []string{"blobs/", "blobs/sha256/"} {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: dir, Mode: archiveDirMode, ModTime: epoch}); err != nil {
			return err
		}
	}
	for _, d := range digests {
		if err := g.writeBlob(ctx, tw, g.blobs[d], epoch); err != nil {
			return err
		}
	}
	for _, f := range []struct {
		name string
		mode int64
		data []byte
	}{
		{ocispec.ImageIndexFile, archiveFileMode, indexJSON},
		{dockerManifestFile, archiveFileMode, manifestJSON},
		{ocispec.ImageLayoutFile, archiveBlobMode, layoutJSON},
	} {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: f.name, Mode: f.mode, Size: int64(len(f.data)), ModTime: epoch}); err != nil {
			return err
		}
		if _, err := tw.Write(f.data); err != nil {
			return err
		}
	}
	return tw.Close()
}

func blobTarPath(d digest.Digest) string {
	return path.Join("blobs", d.Algorithm().String(), d.Encoded())
}

// add puts blob desc and everything it names into the export. A required
// blob the namespace cannot see is an error; for an index's manifests
// (not required) the manifest goes only when the namespace has all of it.
// depth is how many indexes lie above desc.
func (g *exportGraph) add(ctx context.Context, desc ocispec.Descriptor, role string, required bool, depth int) error {
	if _, ok := g.blobs[desc.Digest]; ok {
		return nil
	}
	if depth > imagegraph.MaxIndexDepth && imagegraph.IsDocument(desc.MediaType) {
		return errors.Errorf("%s: indexes nested more than %d deep", role, imagegraph.MaxIndexDepth)
	}
	ok, err := g.t.Exists(ctx, desc)
	if err != nil {
		return errors.WithMessage(err, role)
	}
	if !ok {
		if required {
			return errors.Errorf("%s: blob %s is not in namespace %q", role, desc.Digest, g.t.Namespace().Name)
		}
		g.missing[desc.Digest] = true
		return nil
	}
	if !imagegraph.IsDocument(desc.MediaType) {
		g.blobs[desc.Digest] = ocispec.Descriptor{MediaType: desc.MediaType, Digest: desc.Digest, Size: desc.Size}
		return nil
	}
	data, err := imagegraph.Fetch(ctx, g.t, desc)
	if err != nil {
		return errors.Wrapf(err, "%s: reading %s", role, desc.Digest)
	}
	doc, err := imagegraph.Parse(data)
	if err != nil {
		return errors.Errorf("%s: %s %s: %v", role, documentWord(desc.MediaType), desc.Digest, err)
	}
	var pm exportManifest
	if doc.IsIndex() {
		pm, err = g.addIndex(ctx, doc, role, depth)
	} else {
		var complete bool
		if complete, err = g.addManifest(ctx, doc, role, required); err == nil && !complete {
			g.missing[desc.Digest] = true
			return nil
		}
		pm = exportManifest{config: &doc.Children[0].Descriptor, layers: descriptors(doc.Children[1:])}
	}
	if err != nil {
		return err
	}
	g.parsed[desc.Digest] = pm
	g.blobs[desc.Digest] = ocispec.Descriptor{MediaType: desc.MediaType, Digest: desc.Digest, Size: desc.Size}
	return nil
}

// addManifest puts the config and layers of manifest doc into the export.
// A child of an index goes whole or not at all: it reports false, and
// adds nothing, when the namespace lacks a blob of it that is not
// foreign; for a required manifest that is an error.
func (g *exportGraph) addManifest(ctx context.Context, doc imagegraph.Document, role string, required bool) (bool, error) {
	present := make([]bool, len(doc.Children)) // each blob is asked about once
	for i, b := range doc.Children {
		ok, err := g.t.Exists(ctx, b.Descriptor)
		if err != nil {
			return false, errors.WithMessage(err, role)
		}
		present[i] = ok
		if ok || b.Foreign {
			continue
		}
		if !required {
			return false, nil
		}
		return false, errors.Errorf("%s: %s %s is not in namespace %q", role, b.Role, b.Digest, g.t.Namespace().Name)
	}
	for i, b := range doc.Children {
		if present[i] {
			g.blobs[b.Digest] = ocispec.Descriptor{MediaType: b.MediaType, Digest: b.Digest, Size: b.Size}
		}
	}
	return true, nil
}

// addIndex puts the manifests of index doc that the namespace holds whole
// into the export.
func (g *exportGraph) addIndex(ctx context.Context, doc imagegraph.Document, role string, depth int) (exportManifest, error) {
	var pm exportManifest
	for _, c := range doc.Children {
		if err := g.add(ctx, c.Descriptor, role+" "+c.Role, false, depth+1); err != nil {
			return exportManifest{}, err
		}
		if _, ok := g.blobs[c.Digest]; ok {
			pm.manifests = append(pm.manifests, c.Descriptor)
		}
	}
	return pm, nil
}

// dockerManifest picks the manifest of index desc that manifest.json
// names: the one for platform (default: the host's), else the first one
// exported. Nested indexes are searched too.
func (g *exportGraph) dockerManifest(desc ocispec.Descriptor, want ocispec.Platform, depth int) (ocispec.Descriptor, bool) {
	if want.OS == "" {
		want = HostPlatform()
	}
	var first *ocispec.Descriptor
	for _, c := range g.parsed[desc.Digest].manifests {
		c := c
		if imagegraph.IsIndex(c.MediaType) {
			if depth < imagegraph.MaxIndexDepth {
				if m, ok := g.dockerManifest(c, want, depth+1); ok && first == nil {
					first = &m
				}
			}
			continue
		}
		if !imagegraph.IsManifest(c.MediaType) {
			continue
		}
		if c.Platform != nil && platformMatches(want, *c.Platform) {
			return c, true
		}
		if first == nil {
			first = &c
		}
	}
	if first == nil {
		return ocispec.Descriptor{}, false
	}
	return *first, true
}

// writeBlob copies blob desc from the namespace into the tar, checking
// its size and digest on the way.
func (g *exportGraph) writeBlob(ctx context.Context, tw *tar.Writer, desc ocispec.Descriptor, mtime time.Time) error {
	rc, err := g.t.Fetch(ctx, desc)
	if err != nil {
		return err
	}
	defer rc.Close()
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: blobTarPath(desc.Digest), Mode: archiveBlobMode, Size: desc.Size, ModTime: mtime}); err != nil {
		return err
	}
	h := desc.Digest.Algorithm().Digester()
	n, err := io.Copy(io.MultiWriter(tw, h.Hash()), &ctxReader{ctx: ctx, r: io.LimitReader(rc, desc.Size)})
	if err != nil {
		return errors.Wrapf(err, "exporting blob %s", desc.Digest)
	}
	if n != desc.Size || h.Digest() != desc.Digest {
		return errors.Errorf("exporting blob %s: the namespace gave %d bytes hashing to %s", desc.Digest, n, h.Digest())
	}
	return nil
}
