package client

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/nsfs/nsfs/imagegraph"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/pkg/errors"
)

// docker save archives: manifest.json converted into the Docker schema 2
// manifests containerd's importer makes.

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
