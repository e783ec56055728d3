package imagegraph

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/pkg/errors"
)

// Limits of the graph. They are those the metadata store enforces when an
// image is written (see the package doc).
const (
	// MaxDocumentSize bounds a manifest or index, in bytes.
	MaxDocumentSize = 4 << 20
	// MaxIndexDepth bounds how many indexes may lie above a document that
	// is still read: the children of the documents at most MaxIndexDepth
	// indexes deep are walked, those below are not.
	MaxIndexDepth = 8
)

// Document is what a manifest or index says.
type Document struct {
	// MediaType is the document's mediaType field, or what its shape says
	// when it has none.
	MediaType string
	// Children are a manifest's config then layers, or an index's
	// manifests, in the document's order.
	Children []Child
}

// Child is one descriptor a manifest or index names.
type Child struct {
	// Role names it in messages: "config", "layer 2", "manifest 1".
	Role string
	// Descriptor is its media type, digest, size, and the urls, platform
	// and annotations it names (the last two as far as they decode).
	ocispec.Descriptor
	// Foreign: a layer with URLs, whose bytes may live elsewhere.
	Foreign bool
}

// IsIndex says whether the document is an index (else a manifest).
func (d Document) IsIndex() bool { return IsIndex(d.MediaType) }

// Kind is "index" or "manifest", for messages.
func (d Document) Kind() string {
	if d.IsIndex() {
		return "index"
	}
	return "manifest"
}

// The JSON shapes read; pointers tell an absent field from an empty one,
// unknown fields are ignored.
type jsonDescriptor struct {
	MediaType string   `json:"mediaType"`
	Digest    string   `json:"digest"`
	Size      *int64   `json:"size"`
	URLs      []string `json:"urls"`
	// Platform and Annotations are kept raw: what they hold is no reason
	// to refuse a document, and checkJSONKeys does not read them.
	Platform    json.RawMessage `json:"platform"`
	Annotations json.RawMessage `json:"annotations"`
}

type jsonManifest struct {
	SchemaVersion *int              `json:"schemaVersion"`
	MediaType     string            `json:"mediaType"`
	Config        *jsonDescriptor   `json:"config"`
	Layers        *[]jsonDescriptor `json:"layers"`
	Manifests     *[]jsonDescriptor `json:"manifests"`
}

// Parse checks that data is an OCI or Docker schema 2 manifest or index
// whose descriptors are well formed, and returns what it references. The
// error (plain; the caller adds the kind and the object) says what is
// wrong.
func Parse(data []byte) (Document, error) {
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return Document{}, errors.New("not a JSON object")
	}
	var m jsonManifest
	if err := json.Unmarshal(data, &m); err != nil {
		return Document{}, errors.Errorf("not valid manifest JSON: %v", err)
	}
	if err := checkJSONKeys(data); err != nil {
		return Document{}, err
	}
	if m.SchemaVersion == nil {
		return Document{}, errors.New("schemaVersion is missing")
	}
	if *m.SchemaVersion != 2 {
		return Document{}, errors.Errorf("schemaVersion %d is not supported (only 2)", *m.SchemaVersion)
	}

	mediaType, err := mediaTypeOf(m)
	if err != nil {
		return Document{}, err
	}
	p := Document{MediaType: mediaType}
	if p.IsIndex() {
		if m.Config != nil || (m.Layers != nil && len(*m.Layers) > 0) {
			return Document{}, errors.Errorf("media type %s is an index, but it has a config or layers", p.MediaType)
		}
		if m.Manifests == nil {
			return Document{}, errors.Errorf("index (%s) has no manifests", p.MediaType)
		}
		for i, d := range *m.Manifests {
			r, err := checkDescriptor(fmt.Sprintf("manifest %d", i+1), d)
			if err != nil {
				return Document{}, err
			}
			p.Children = append(p.Children, r)
		}
		return p, nil
	}

	if m.Manifests != nil && len(*m.Manifests) > 0 {
		return Document{}, errors.Errorf("media type %s is a manifest, but it has manifests", p.MediaType)
	}
	if m.Config == nil {
		return Document{}, errors.Errorf("manifest (%s) has no config", p.MediaType)
	}
	r, err := checkDescriptor("config", *m.Config)
	if err != nil {
		return Document{}, err
	}
	p.Children = append(p.Children, r)
	if m.Layers != nil {
		for i, d := range *m.Layers {
			r, err := checkDescriptor(fmt.Sprintf("layer %d", i+1), d)
			if err != nil {
				return Document{}, err
			}
			r.Foreign = len(d.URLs) > 0
			p.Children = append(p.Children, r)
		}
	}
	return p, nil
}

// mediaTypeOf is the document's media type: its mediaType field, which
// must be a manifest's or an index's, else what its shape says (an index
// has manifests, a manifest a config). It is the one place that infers
// it.
func mediaTypeOf(m jsonManifest) (string, error) {
	switch {
	case m.MediaType != "":
		if !IsDocument(m.MediaType) {
			return "", errors.Errorf("media type %q is not an OCI or Docker manifest or index", m.MediaType)
		}
		return m.MediaType, nil
	case m.Manifests != nil:
		return ocispec.MediaTypeImageIndex, nil
	case m.Config != nil:
		return ocispec.MediaTypeImageManifest, nil
	}
	return "", errors.New("neither a manifest (no config) nor an index (no manifests)")
}

// checkDescriptor checks one descriptor: a sha256 digest, a size, a media
// type.
func checkDescriptor(role string, d jsonDescriptor) (Child, error) {
	if d.MediaType == "" {
		return Child{}, errors.Errorf("%s has no mediaType", role)
	}
	if d.Digest == "" {
		return Child{}, errors.Errorf("%s has no digest", role)
	}
	if alg, _, _ := strings.Cut(d.Digest, ":"); alg != string(digest.SHA256) {
		return Child{}, errors.Errorf("%s: digest %q: a digest of another algorithm than sha256 is not supported", role, shorten(d.Digest))
	}
	dg, err := digest.Parse(d.Digest)
	if err != nil {
		return Child{}, errors.Errorf("%s: digest %q: %v", role, shorten(d.Digest), err)
	}
	if d.Size == nil {
		return Child{}, errors.Errorf("%s (%s) has no size", role, dg)
	}
	if *d.Size < 0 {
		return Child{}, errors.Errorf("%s (%s) has a negative size %d", role, dg, *d.Size)
	}
	c := Child{Role: role, Descriptor: ocispec.Descriptor{MediaType: d.MediaType, Digest: dg, Size: *d.Size}}
	if len(d.URLs) > 0 {
		c.URLs = d.URLs
	}
	if len(d.Platform) > 0 {
		var p ocispec.Platform
		if json.Unmarshal(d.Platform, &p) == nil && !bytes.Equal(d.Platform, []byte("null")) {
			c.Platform = &p
		}
	}
	if len(d.Annotations) > 0 {
		var a map[string]string
		if json.Unmarshal(d.Annotations, &a) == nil && len(a) > 0 {
			c.Annotations = a
		}
	}
	return c, nil
}

// shorten keeps error messages readable when a value is absurdly long.
func shorten(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	return s[:max] + "..."
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
