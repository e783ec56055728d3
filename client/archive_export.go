package client

import (
	"archive/tar"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/nsfs/nsfs/imagegraph"
	"github.com/nsfs/nsfs/names"
	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/pkg/errors"
	"oras.land/oras-go/v2/content"
)

// Export: images of a namespace written as an OCI image-layout tar that
// also carries Docker's manifest.json.

// ExportOptions are the choices of an export.
type ExportOptions struct {
	// Platform picks, for an image that is an index, the manifest that
	// Docker's manifest.json names (Docker cannot name an index). Given,
	// the index must have a manifest for it that the namespace holds
	// whole, else the export fails (as ctr's does), naming the platform
	// and the image. Empty means the host's (runtime.GOOS/GOARCH), and
	// when no manifest of the index matches, the first one the namespace
	// holds is named.
	Platform ocispec.Platform
}

// exportGraph is what an export writes: blobs by digest (in a stable
// order), and for each exported manifest the names Docker's manifest.json
// gives it.
type exportGraph struct {
	t       *Target
	blobs   map[digest.Digest]ocispec.Descriptor
	parsed  map[digest.Digest]exportManifest
	missing map[digest.Digest]bool // children looked for and not complete
	walker  imagegraph.Walker      // over every image: each blob is added once
}

// exportManifest is a manifest or index the export read.
type exportManifest struct {
	config    *ocispec.Descriptor
	layers    []ocispec.Descriptor
	manifests []ocispec.Descriptor // of an index: those exported
	named     []ocispec.Descriptor // of an index: every manifest it names, exported or not
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
	if err := n.CheckExists(); err != nil {
		return err
	}
	g := &exportGraph{t: n.Target(), blobs: map[digest.Digest]ocispec.Descriptor{}, parsed: map[digest.Digest]exportManifest{}, missing: map[digest.Digest]bool{}}
	plan, err := g.plan(ctx, refs, opts)
	if err != nil {
		return err
	}
	files, err := plan.files(g)
	if err != nil {
		return err
	}
	return g.writeTar(ctx, w, files)
}

// exportPlan is what an export writes beside the blobs: index.json's
// entries, and Docker's manifest.json's.
type exportPlan struct {
	index  ocispec.Index
	docker []*dockerEntry
}

// dockerEntry is an image of Docker's manifest.json: a manifest and its
// names.
type dockerEntry struct {
	manifest ocispec.Descriptor
	names    []string
}

// plan reads images refs and everything below them into the export, and
// names them in index.json and manifest.json. Nothing is written.
func (g *exportGraph) plan(ctx context.Context, refs []string, opts ExportOptions) (*exportPlan, error) {
	p := &exportPlan{index: ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex}}
	seen := map[string]bool{}
	dockerByDigest := map[digest.Digest]*dockerEntry{}
	for _, ref := range refs {
		if seen[ref] {
			continue
		}
		seen[ref] = true
		desc, err := g.addImage(ctx, ref)
		if err != nil {
			return nil, err
		}
		annotated := desc
		annotated.Annotations = map[string]string{
			annotationContainerdName:  ref,
			ocispec.AnnotationRefName: OCIRefName(ref),
		}
		p.index.Manifests = append(p.index.Manifests, annotated)

		// Docker's manifest.json: the manifest itself, or the index's
		// manifest for the platform.
		m := desc
		switch {
		case !imagegraph.IsIndex(desc.MediaType):
		case opts.Platform.OS != "":
			if m, err = g.platformManifest(ref, desc, opts.Platform); err != nil {
				return nil, err
			}
		default:
			var ok bool
			if m, ok = g.dockerManifest(desc, opts.Platform, 0); !ok {
				continue
			}
		}
		e := dockerByDigest[m.Digest]
		if e == nil {
			e = &dockerEntry{manifest: m}
			dockerByDigest[m.Digest] = e
			p.docker = append(p.docker, e)
		}
		if tag, ok := FamiliarDockerRef(ref); ok {
			e.names = append(e.names, tag)
		}
	}
	return p, nil
}

// addImage reads image ref of the namespace and puts its target, and
// everything below it, into the export.
func (g *exportGraph) addImage(ctx context.Context, ref string) (ocispec.Descriptor, error) {
	ns := g.t.Namespace().Name
	if problem := names.RefProblem(ref); problem != "" {
		return ocispec.Descriptor{}, errors.Errorf("image %q: not an nsfs ref: %s", ref, problem)
	}
	imgPath, err := g.t.ImagePath(ref)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	data, err := os.ReadFile(imgPath)
	if errors.Is(err, os.ErrNotExist) {
		return ocispec.Descriptor{}, errors.Errorf("image %q: not found in namespace %q", ref, ns)
	}
	if err != nil {
		return ocispec.Descriptor{}, errors.Wrapf(err, "image %q in namespace %q", ref, ns)
	}
	desc := imageDescriptor(data)
	if err := g.add(ctx, desc, fmt.Sprintf("image %q", ref)); err != nil {
		return ocispec.Descriptor{}, err
	}
	return desc, nil
}

// archiveFile is a file of the export beside its blobs.
type archiveFile struct {
	name string
	mode int64
	data []byte
}

// files are index.json, Docker's manifest.json and oci-layout, in the
// order containerd's exporter writes them.
func (p *exportPlan) files(g *exportGraph) ([]archiveFile, error) {
	indexJSON, err := json.Marshal(p.index)
	if err != nil {
		return nil, err
	}
	saved := make([]dockerSaveImage, 0, len(p.docker))
	for _, e := range p.docker {
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
		return nil, err
	}
	layoutJSON, err := json.Marshal(ocispec.ImageLayout{Version: ocispec.ImageLayoutVersion})
	if err != nil {
		return nil, err
	}
	return []archiveFile{
		{ocispec.ImageIndexFile, archiveFileMode, indexJSON},
		{dockerManifestFile, archiveFileMode, manifestJSON},
		{ocispec.ImageLayoutFile, archiveBlobMode, layoutJSON},
	}, nil
}

// writeTar writes the export to w: the blobs sorted by name, as
// containerd's exporter writes them, then files.
func (g *exportGraph) writeTar(ctx context.Context, w io.Writer, files []archiveFile) error {
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
	for _, f := range files {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: f.name, Mode: f.mode, Size: int64(len(f.data)), ModTime: epoch}); err != nil {
			return err
		}
		if _, err := tw.Write(f.data); err != nil {
			return err
		}
	}
	return tw.Close()
}

// add puts image root and everything it names into the export, with an
// imagegraph.Walker. The root must be there, whole; an index's manifests
// go only when the namespace has all of each. role names the root in
// messages.
func (g *exportGraph) add(ctx context.Context, root ocispec.Descriptor, role string) error {
	var roleOf func(n *imagegraph.Node) string
	roleOf = func(n *imagegraph.Node) string {
		if n.Parent == nil {
			return role
		}
		return roleOf(n.Parent) + " " + n.Role
	}
	g.walker.Enter = func(n *imagegraph.Node) (*imagegraph.Document, error) {
		return g.addBlob(ctx, n.Descriptor, roleOf(n), n.Parent == nil, n.TooDeep)
	}
	g.walker.Leave = func(n *imagegraph.Node) error {
		if n.Doc != nil {
			g.addIndex(n.Descriptor, *n.Doc)
		}
		return nil
	}
	return g.walker.WalkFrom(imagegraph.Child{Descriptor: root})
}

// addBlob puts blob desc, the image or a manifest of an index, into the
// export, and returns the index whose manifests are added next (addIndex
// then adds the index itself). A manifest goes with its config and layers
// (addManifest). A required blob the namespace cannot see is an error; a
// manifest of an index it does not hold whole is imagegraph.Pass.
// tooDeep: desc is a manifest or index below more indexes than
// imagegraph.MaxIndexDepth.
func (g *exportGraph) addBlob(ctx context.Context, desc ocispec.Descriptor, role string, required, tooDeep bool) (*imagegraph.Document, error) {
	if tooDeep {
		return nil, errors.Errorf("%s: %v", role, imagegraph.ErrTooDeep)
	}
	ok, err := g.t.Exists(ctx, desc)
	if err != nil {
		return nil, errors.WithMessage(err, role)
	}
	if !ok {
		if required {
			return nil, errors.Errorf("%s: blob %s is not in namespace %q", role, desc.Digest, g.t.Namespace().Name)
		}
		g.missing[desc.Digest] = true
		return nil, imagegraph.Pass
	}
	if !imagegraph.IsDocument(desc.MediaType) {
		g.blobs[desc.Digest] = ocispec.Descriptor{MediaType: desc.MediaType, Digest: desc.Digest, Size: desc.Size}
		return nil, nil
	}
	data, err := imagegraph.Fetch(ctx, g.t, desc)
	if err != nil {
		return nil, errors.Wrapf(err, "%s: reading %s", role, desc.Digest)
	}
	doc, err := imagegraph.Parse(data)
	if err != nil {
		return nil, errors.Errorf("%s: %s %s: %v", role, documentWord(desc.MediaType), desc.Digest, err)
	}
	if doc.IsIndex() {
		return &doc, nil
	}
	complete, err := g.addManifest(ctx, doc, role, required)
	if err != nil {
		return nil, err
	}
	if !complete {
		g.missing[desc.Digest] = true
		return nil, imagegraph.Pass
	}
	g.parsed[desc.Digest] = exportManifest{config: &doc.Children[0].Descriptor, layers: descriptors(doc.Children[1:])}
	g.blobs[desc.Digest] = ocispec.Descriptor{MediaType: desc.MediaType, Digest: desc.Digest, Size: desc.Size}
	return nil, nil
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

// addIndex puts index desc, whose manifests the walk has added where the
// namespace holds them whole, into the export.
func (g *exportGraph) addIndex(desc ocispec.Descriptor, doc imagegraph.Document) {
	var pm exportManifest
	for _, c := range doc.Children {
		pm.named = append(pm.named, c.Descriptor)
		if _, ok := g.blobs[c.Digest]; ok {
			pm.manifests = append(pm.manifests, c.Descriptor)
		}
	}
	g.parsed[desc.Digest] = pm
	g.blobs[desc.Digest] = ocispec.Descriptor{MediaType: desc.MediaType, Digest: desc.Digest, Size: desc.Size}
}

// dockerManifest picks the manifest of index desc that manifest.json
// names: the one for platform (default: the host's), else the first one
// exported. Nested indexes are searched too.
//
// It recurses by hand, not with imagegraph's walks: it reads no document
// (it searches the export already planned, g.parsed), and it is not a
// walk of blobs but a choice among descriptors, made level by level: a
// nested index offers its own match, else its first manifest, as one
// candidate in its parent's order, and a platform is the descriptor's,
// so every occurrence of a digest counts. The once-per-digest rule of
// imagegraph.Walker and imagegraph.Walk would skip a later occurrence
// and could pick another manifest.
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

// platformManifest is the manifest for platform want (given with
// --platform) of index desc, image ref, or nested indexes below it, that
// the export holds; none is an error that names the platform and the
// image, and says whether the index names no such manifest or the
// namespace does not hold it (a pull of another platform only).
//
//	image "app:multi" has no manifest for platform linux/s390x (its index names linux/amd64, linux/arm64)
func (g *exportGraph) platformManifest(ref string, desc ocispec.Descriptor, want ocispec.Platform) (ocispec.Descriptor, error) {
	if m, ok := g.matchingManifest(desc, want, 0); ok {
		return m, nil
	}
	var named []string
	for _, c := range g.parsed[desc.Digest].named {
		if c.Platform == nil {
			continue
		}
		if platformMatches(want, *c.Platform) {
			return ocispec.Descriptor{}, withKind(ErrNotFound, "image %q: the manifest for platform %s is not in the namespace (pull it with --platform %s)",
				ref, FormatPlatform(want), FormatPlatform(want))
		}
		named = append(named, FormatPlatform(*c.Platform))
	}
	return ocispec.Descriptor{}, withKind(ErrNotFound, "image %q has no manifest for platform %s (its index names %s)",
		ref, FormatPlatform(want), orNone(strings.Join(named, ", ")))
}

// matchingManifest is the first manifest exported below index desc (its
// own entries first, then those of nested indexes, in order) whose
// descriptor names a platform matching want.
func (g *exportGraph) matchingManifest(desc ocispec.Descriptor, want ocispec.Platform, depth int) (ocispec.Descriptor, bool) {
	manifests := g.parsed[desc.Digest].manifests
	for _, c := range manifests {
		if imagegraph.IsManifest(c.MediaType) && c.Platform != nil && platformMatches(want, *c.Platform) {
			return c, true
		}
	}
	for _, c := range manifests {
		if imagegraph.IsIndex(c.MediaType) && depth < imagegraph.MaxIndexDepth {
			if m, ok := g.matchingManifest(c, want, depth+1); ok {
				return m, true
			}
		}
	}
	return ocispec.Descriptor{}, false
}

// orNone is s, or "no platform" when s is empty.
func orNone(s string) string {
	if s == "" {
		return "no platform"
	}
	return s
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
	vr := content.NewVerifyReader(rc, desc)
	if _, err := io.Copy(tw, &ctxReader{ctx: ctx, r: vr}); err != nil {
		return errors.Wrapf(err, "exporting blob %s", desc.Digest)
	}
	if err := vr.Verify(); err != nil {
		return errors.Wrapf(err, "exporting blob %s: the namespace gave other bytes", desc.Digest)
	}
	return nil
}
