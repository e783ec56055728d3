package metadata

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/pkg/errors"
)

// Media types an image's target may have.
const (
	MediaTypeDockerManifest     = "application/vnd.docker.distribution.manifest.v2+json"
	MediaTypeDockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json"
)

// isManifestType and isIndexType tell the accepted media types apart.
func isManifestType(mt string) bool {
	return mt == ocispec.MediaTypeImageManifest || mt == MediaTypeDockerManifest
}

func isIndexType(mt string) bool {
	return mt == ocispec.MediaTypeImageIndex || mt == MediaTypeDockerManifestList
}

// reference is one descriptor a manifest or index names.
type reference struct {
	role      string // for messages: "config", "layer 2", "manifest 1"
	mediaType string
	digest    digest.Digest
	size      int64
	foreign   bool // a layer with URLs: its bytes may live elsewhere
}

// parsedManifest is what an image's target says.
type parsedManifest struct {
	mediaType string
	isIndex   bool
	refs      []reference // config then layers, or an index's manifests
}

// The JSON shapes read; pointers tell an absent field from an empty one,
// unknown fields are ignored.
type jsonDescriptor struct {
	MediaType string   `json:"mediaType"`
	Digest    string   `json:"digest"`
	Size      *int64   `json:"size"`
	URLs      []string `json:"urls"`
}

type jsonManifest struct {
	SchemaVersion *int              `json:"schemaVersion"`
	MediaType     string            `json:"mediaType"`
	Config        *jsonDescriptor   `json:"config"`
	Layers        *[]jsonDescriptor `json:"layers"`
	Manifests     *[]jsonDescriptor `json:"manifests"`
}

// parseManifest checks that data is an OCI or Docker schema 2 manifest or
// index whose descriptors are well formed, and returns what it references.
// The error (plain; the caller adds the kind and the image) says what is
// wrong.
func parseManifest(data []byte) (parsedManifest, error) {
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return parsedManifest{}, errors.New("not a JSON object")
	}
	var m jsonManifest
	if err := json.Unmarshal(data, &m); err != nil {
		return parsedManifest{}, errors.Errorf("not valid manifest JSON: %v", err)
	}
	if err := checkJSONKeys(data); err != nil {
		return parsedManifest{}, err
	}
	if m.SchemaVersion == nil {
		return parsedManifest{}, errors.New("schemaVersion is missing")
	}
	if *m.SchemaVersion != 2 {
		return parsedManifest{}, errors.Errorf("schemaVersion %d is not supported (only 2)", *m.SchemaVersion)
	}

	p := parsedManifest{mediaType: m.MediaType}
	switch {
	case m.MediaType != "":
		if !isManifestType(m.MediaType) && !isIndexType(m.MediaType) {
			return parsedManifest{}, errors.Errorf("media type %q is not an OCI or Docker manifest or index", m.MediaType)
		}
	case m.Manifests != nil:
		p.mediaType = ocispec.MediaTypeImageIndex
	case m.Config != nil:
		p.mediaType = ocispec.MediaTypeImageManifest
	default:
		return parsedManifest{}, errors.New("neither a manifest (no config) nor an index (no manifests)")
	}
	p.isIndex = isIndexType(p.mediaType)

	if p.isIndex {
		if m.Config != nil || (m.Layers != nil && len(*m.Layers) > 0) {
			return parsedManifest{}, errors.Errorf("media type %s is an index, but it has a config or layers", p.mediaType)
		}
		if m.Manifests == nil {
			return parsedManifest{}, errors.Errorf("index (%s) has no manifests", p.mediaType)
		}
		for i, d := range *m.Manifests {
			r, err := checkDescriptor(fmt.Sprintf("manifest %d", i+1), d)
			if err != nil {
				return parsedManifest{}, err
			}
			p.refs = append(p.refs, r)
		}
		return p, nil
	}

	if m.Manifests != nil && len(*m.Manifests) > 0 {
		return parsedManifest{}, errors.Errorf("media type %s is a manifest, but it has manifests", p.mediaType)
	}
	if m.Config == nil {
		return parsedManifest{}, errors.Errorf("manifest (%s) has no config", p.mediaType)
	}
	r, err := checkDescriptor("config", *m.Config)
	if err != nil {
		return parsedManifest{}, err
	}
	p.refs = append(p.refs, r)
	if m.Layers != nil {
		for i, d := range *m.Layers {
			r, err := checkDescriptor(fmt.Sprintf("layer %d", i+1), d)
			if err != nil {
				return parsedManifest{}, err
			}
			r.foreign = len(d.URLs) > 0
			p.refs = append(p.refs, r)
		}
	}
	return p, nil
}

// checkDescriptor checks one descriptor: a sha256 digest, a size, a media
// type.
func checkDescriptor(role string, d jsonDescriptor) (reference, error) {
	if d.MediaType == "" {
		return reference{}, errors.Errorf("%s has no mediaType", role)
	}
	if d.Digest == "" {
		return reference{}, errors.Errorf("%s has no digest", role)
	}
	if alg, _, _ := strings.Cut(d.Digest, ":"); alg != string(digest.SHA256) {
		return reference{}, errors.Errorf("%s: digest %q: a digest of another algorithm than sha256 is not supported", role, shorten(d.Digest))
	}
	dg, err := digest.Parse(d.Digest)
	if err != nil {
		return reference{}, errors.Errorf("%s: digest %q: %v", role, shorten(d.Digest), err)
	}
	if d.Size == nil {
		return reference{}, errors.Errorf("%s (%s) has no size", role, dg)
	}
	if *d.Size < 0 {
		return reference{}, errors.Errorf("%s (%s) has a negative size %d", role, dg, *d.Size)
	}
	return reference{role: role, mediaType: d.MediaType, digest: dg, size: *d.Size}, nil
}

// maxJSONDepth bounds how deeply objects and arrays may nest in a manifest
// or index; real ones nest four or five levels (layers, a descriptor, its
// platform or annotations).
const maxJSONDepth = 64

// jsonShape is what checkJSONKeys knows of the objects json.Unmarshal reads
// into structs: their fields by exact name, and the shapes below them.
type jsonShape struct {
	fields   map[string]*jsonShape // an object decoded into a struct
	elements *jsonShape            // an array of such objects
}

var (
	descriptorShape = &jsonShape{fields: map[string]*jsonShape{"mediaType": nil, "digest": nil, "size": nil, "urls": nil}}
	manifestShape   = &jsonShape{fields: map[string]*jsonShape{
		"schemaVersion": nil,
		"mediaType":     nil,
		"config":        descriptorShape,
		"layers":        {elements: descriptorShape},
		"manifests":     {elements: descriptorShape},
	}}
)

// checkJSONKeys refuses what parsers disagree on, so that what nsfs
// accepts means the same to every reader of the manifest: a key twice in
// one object, at any depth (encoding/json keeps the last, others the
// first), and a key that differs only in case from a field nsfs reads
// ("Config": encoding/json takes it for "config", others ignore it). It
// walks the token stream, at most maxJSONDepth levels deep.
func checkJSONKeys(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber() // a number's range is no concern here
	return walkJSONValue(dec, "", 0, manifestShape)
}

// walkJSONValue reads one value of the stream at path ("" is the top
// level, ".layers[0]" a layer's descriptor).
func walkJSONValue(dec *json.Decoder, path string, depth int, shape *jsonShape) error {
	tok, err := dec.Token()
	if err != nil {
		return errors.Errorf("not valid manifest JSON: %v", err)
	}
	delim, ok := tok.(json.Delim)
	if !ok {
		return nil
	}
	if depth >= maxJSONDepth {
		return errors.Errorf("JSON nested deeper than %d levels at %s", maxJSONDepth, jsonPlace(path))
	}
	switch delim {
	case '{':
		seen := map[string]bool{}
		for dec.More() {
			tok, err := dec.Token()
			if err != nil {
				return errors.Errorf("not valid manifest JSON: %v", err)
			}
			key, _ := tok.(string)
			if seen[key] {
				return errors.Errorf("duplicate key %q %s", shorten(key), jsonPlace(path))
			}
			seen[key] = true
			var child *jsonShape
			if shape != nil && shape.fields != nil {
				if _, known := shape.fields[key]; known {
					child = shape.fields[key]
				} else {
					for field := range shape.fields {
						if strings.EqualFold(key, field) {
							return errors.Errorf("key %q %s differs from %q only in case (JSON parsers disagree on whether it is %q)", shorten(key), jsonPlace(path), field, field)
						}
					}
				}
			}
			if err := walkJSONValue(dec, path+"."+key, depth+1, child); err != nil {
				return err
			}
		}
	case '[':
		var elements *jsonShape
		if shape != nil {
			elements = shape.elements
		}
		for i := 0; dec.More(); i++ {
			if err := walkJSONValue(dec, fmt.Sprintf("%s[%d]", path, i), depth+1, elements); err != nil {
				return err
			}
		}
	}
	if _, err := dec.Token(); err != nil { // the closing '}' or ']'
		return errors.Errorf("not valid manifest JSON: %v", err)
	}
	return nil
}

// jsonPlace names where in the document path is, for messages.
func jsonPlace(path string) string {
	if path == "" {
		return "at the top level"
	}
	return "in " + shorten(path)
}
