package imagegraph

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/nsfs/nsfs/blobs"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// FuzzParseManifest: whatever Parse accepts is a JSON object whose
// media type is one of the four, whose references all carry a sha256
// digest the blob store can name and a size >= 0, a manifest's config
// first; written back as a canonical manifest or index, it parses to the
// same references.
func FuzzParseManifest(f *testing.F) {
	cfg := `{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:` + strings.Repeat("a", 64) + `","size":2}`
	layer := `{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:` + strings.Repeat("b", 64) + `","size":10}`
	for _, s := range []string{
		`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":` + cfg + `,"layers":[` + layer + `]}`,
		`{"schemaVersion":2,"config":` + cfg + `}`,
		`{"schemaVersion":2,"manifests":[` + cfg + `]}`,
		`{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.list.v2+json","manifests":[]}`,
		`{"schemaVersion":2,"config":{"mediaType":"x","digest":"sha512:` + strings.Repeat("c", 128) + `","size":1}}`,
		`{"schemaVersion":2,"config":{"mediaType":"x","digest":"sha256:` + strings.Repeat("A", 64) + `","size":1}}`,
		`{"schemaVersion":2,"config":{"mediaType":"x","digest":"sha256:` + strings.Repeat("a", 64) + `","size":-1}}`,
		`{"schemaVersion":1}`, `[]`, ``, `{`, "\t{\"schemaVersion\":2.0}",
		`{"schemaVersion":2,"config":` + cfg + `,"config":` + cfg + `}`,
		`{"schemaVersion":2,"config":` + cfg + `,"layers":[` + layer + `],"x":{"a":{"b":1,"b":2}}}`,
		`{"schemaVersion":2,"Config":` + cfg + `}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Parse(data)
		if err != nil {
			return
		}
		if !json.Valid(data) {
			t.Fatalf("Parse accepted invalid JSON %q", data)
		}
		// No key twice in an object: decoding collapses duplicates, so the
		// decoded tree has as many keys as the text has (one ':' each).
		var tree any
		if err := json.Unmarshal(data, &tree); err != nil {
			t.Fatal(err)
		}
		if text, decoded := colonsOutsideStrings(data), countKeys(tree); text != decoded {
			t.Fatalf("Parse accepted %q: %d keys in the text, %d once decoded (a duplicate key)", data, text, decoded)
		}
		if !IsDocument(p.MediaType) {
			t.Fatalf("Parse accepted media type %q", p.MediaType)
		}
		if !p.IsIndex() && (len(p.Children) == 0 || p.Children[0].Role != "config") {
			t.Fatalf("Parse accepted a manifest whose first reference is not its config: %+v", p.Children)
		}
		for _, r := range p.Children {
			if err := blobs.ValidateDigest(r.Digest); err != nil {
				t.Fatalf("Parse accepted %s digest %q the blob store cannot name: %v", r.Role, r.Digest, err)
			}
			if r.Size < 0 || r.MediaType == "" {
				t.Fatalf("Parse accepted %s with size %d and media type %q", r.Role, r.Size, r.MediaType)
			}
			if r.Foreign != (r.Role != "config" && !p.IsIndex() && len(r.URLs) > 0) {
				t.Fatalf("Parse: %s with urls %q is foreign: %v", r.Role, r.URLs, r.Foreign)
			}
		}
		again, err := Parse(canonicalManifest(t, p))
		if err != nil {
			t.Fatalf("the canonical form of an accepted manifest is refused: %v", err)
		}
		// A platform and annotations are read as far as they decode; their
		// canonical form need not decode the same (an empty os.features).
		withoutLenientFields(again)
		withoutLenientFields(p)
		if !reflect.DeepEqual(again, p) {
			t.Fatalf("the canonical form parses to %+v, the original to %+v", again, p)
		}
	})
}

// colonsOutsideStrings counts the ':' of JSON text outside string
// literals: one per object key.
func colonsOutsideStrings(data []byte) int {
	n, inString, escaped := 0, false, false
	for _, c := range data {
		switch {
		case escaped:
			escaped = false
		case inString && c == '\\':
			escaped = true
		case c == '"':
			inString = !inString
		case !inString && c == ':':
			n++
		}
	}
	return n
}

// countKeys counts the keys of every object in a decoded JSON value.
func countKeys(v any) int {
	n := 0
	switch v := v.(type) {
	case map[string]any:
		for _, child := range v {
			n += 1 + countKeys(child)
		}
	case []any:
		for _, child := range v {
			n += countKeys(child)
		}
	}
	return n
}

// canonicalManifest writes p back as an OCI-shaped manifest or index.
func canonicalManifest(t *testing.T, p Document) []byte {
	desc := func(r Child) ocispec.Descriptor {
		return ocispec.Descriptor{MediaType: r.MediaType, Digest: r.Digest, Size: r.Size, URLs: r.URLs, Platform: r.Platform, Annotations: r.Annotations}
	}
	m := map[string]any{"schemaVersion": 2, "mediaType": p.MediaType}
	if p.IsIndex() {
		ds := []ocispec.Descriptor{}
		for _, r := range p.Children {
			ds = append(ds, desc(r))
		}
		m["manifests"] = ds
	} else {
		m["config"] = desc(p.Children[0])
		ls := []ocispec.Descriptor{}
		for _, r := range p.Children[1:] {
			ls = append(ls, desc(r))
		}
		m["layers"] = ls
	}
	out, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// withoutLenientFields drops the platforms and annotations of p's
// children.
func withoutLenientFields(p Document) {
	for i := range p.Children {
		p.Children[i].Platform = nil
		p.Children[i].Annotations = nil
	}
}
