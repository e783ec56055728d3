package client

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/nsfs/nsfs/imagegraph"
	"github.com/nsfs/nsfs/names"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/pkg/errors"
)

// The import plan: which images an archive holds, and every blob they
// need, checked and ordered children first, before anything is written.

// importPlan is what an import will write: the blobs in an order where
// every manifest follows what it names, and the images.
type importPlan struct {
	arch   *tarArchive
	blobs  map[digest.Digest]planBlob
	walker imagegraph.Walker // over every image: each blob is planned once
	order  []digest.Digest   // children before parents
	images []ArchiveImage
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
	p := &importPlan{arch: a, blobs: map[digest.Digest]planBlob{}}
	var (
		roots []ocispec.Descriptor
		refs  []string
		err   error
	)
	switch {
	case a.has(ocispec.ImageLayoutFile):
		roots, refs, err = a.ociImages(prefix, filterPrefix)
	case a.has(dockerManifestFile):
		roots, refs, err = a.dockerImages(p)
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
		name := refs[i]
		if name == "" {
			name = prefix + "@" + root.Digest.String()
		}
		if problem := names.RefProblem(name); problem != "" {
			return nil, errors.Errorf("image %q of the archive cannot be an nsfs ref: %s", name, problem)
		}
		if !imagegraph.IsDocument(root.MediaType) {
			return nil, errors.Errorf("image %q: %s is a %q, not an image manifest or index", name, root.Digest, root.MediaType)
		}
		if err := p.need(root, fmt.Sprintf("image %q", name)); err != nil {
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

// need adds image root, and everything it names, to the plan, children
// first, with an imagegraph.Walker. The root must be there, and what a
// manifest names (a foreign layer, with URLs, may live elsewhere); an
// index's manifests need not be (an image may come with some of its
// platforms). role names the root in messages.
func (p *importPlan) need(root ocispec.Descriptor, role string) error {
	var roleOf func(n *imagegraph.Node) string
	roleOf = func(n *imagegraph.Node) string {
		if n.Parent == nil {
			return role
		}
		return roleOf(n.Parent) + " " + n.Role
	}
	p.walker.Enter = func(n *imagegraph.Node) (*imagegraph.Document, error) {
		required := n.Parent == nil || (!n.Parent.Doc.IsIndex() && !n.Foreign)
		return p.needBlob(n.Descriptor, roleOf(n), required, n.TooDeep)
	}
	p.walker.Leave = func(n *imagegraph.Node) error {
		p.order = append(p.order, n.Digest)
		return nil
	}
	return p.walker.WalkFrom(imagegraph.Child{Descriptor: root})
}

// needBlob adds blob desc to the plan and returns its document, for a
// manifest or index: imagegraph.Pass when it is not there and not
// required. tooDeep: desc is a manifest or index below more indexes than
// imagegraph.MaxIndexDepth.
func (p *importPlan) needBlob(desc ocispec.Descriptor, role string, required, tooDeep bool) (*imagegraph.Document, error) {
	if tooDeep {
		return nil, errors.Errorf("%s: %v", role, imagegraph.ErrTooDeep)
	}
	b, ok, err := p.lookup(desc, role)
	if err != nil {
		return nil, err
	}
	if !ok {
		if required {
			return nil, errors.Errorf("%s: blob %s is not in the archive", role, desc.Digest)
		}
		return nil, imagegraph.Pass
	}
	size := b.entry.size
	if b.data != nil {
		size = int64(len(b.data))
	}
	if size != desc.Size {
		return nil, errors.Errorf("%s: blob %s has %d bytes in the archive, but its descriptor says %d", role, desc.Digest, size, desc.Size)
	}
	b.desc = ocispec.Descriptor{MediaType: desc.MediaType, Digest: desc.Digest, Size: desc.Size}
	var doc *imagegraph.Document
	if imagegraph.IsDocument(desc.MediaType) {
		b.manifest = true
		if doc, err = p.readDocument(b, role); err != nil {
			return nil, err
		}
	}
	p.blobs[desc.Digest] = b
	return doc, nil
}

// readDocument reads and parses the manifest or index b.
func (p *importPlan) readDocument(b planBlob, role string) (*imagegraph.Document, error) {
	data := b.data
	if data == nil {
		var err error
		if data, err = p.arch.readEntry(b.entry, imagegraph.MaxDocumentSize); err != nil {
			return nil, errors.WithMessage(err, role)
		}
	}
	doc, err := imagegraph.Parse(data)
	if err != nil {
		return nil, errors.Errorf("%s: %s %s: %v", role, documentWord(b.desc.MediaType), b.desc.Digest, err)
	}
	return &doc, nil
}

// open reads blob b from where the plan found it.
func (p *importPlan) open(b planBlob) io.Reader {
	if b.data != nil {
		return bytes.NewReader(b.data)
	}
	return io.NewSectionReader(p.arch.r, b.entry.offset, b.entry.size)
}
