package metadata

// Fuzz targets for what users and the disk hand to metadata: manifests,
// and the image records read back from bbolt (the naming rules' targets
// are in names/). Each checks properties, not only the absence of a panic. The seed
// corpus is in testdata/fuzz/<Target>/; `make fuzz` runs each for a while.

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nsfs/nsfs/blobs"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// FuzzParseManifest: whatever parseManifest accepts is a JSON object whose
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
		p, err := parseManifest(data)
		if err != nil {
			return
		}
		if !json.Valid(data) {
			t.Fatalf("parseManifest accepted invalid JSON %q", data)
		}
		// No key twice in an object: decoding collapses duplicates, so the
		// decoded tree has as many keys as the text has (one ':' each).
		var tree any
		if err := json.Unmarshal(data, &tree); err != nil {
			t.Fatal(err)
		}
		if text, decoded := colonsOutsideStrings(data), countKeys(tree); text != decoded {
			t.Fatalf("parseManifest accepted %q: %d keys in the text, %d once decoded (a duplicate key)", data, text, decoded)
		}
		if !isManifestType(p.mediaType) && !isIndexType(p.mediaType) {
			t.Fatalf("parseManifest accepted media type %q", p.mediaType)
		}
		if p.isIndex != isIndexType(p.mediaType) {
			t.Fatalf("parseManifest: isIndex %v for media type %q", p.isIndex, p.mediaType)
		}
		if !p.isIndex && (len(p.refs) == 0 || p.refs[0].role != "config") {
			t.Fatalf("parseManifest accepted a manifest whose first reference is not its config: %+v", p.refs)
		}
		for _, r := range p.refs {
			if err := blobs.ValidateDigest(r.digest); err != nil {
				t.Fatalf("parseManifest accepted %s digest %q the blob store cannot name: %v", r.role, r.digest, err)
			}
			if r.size < 0 || r.mediaType == "" {
				t.Fatalf("parseManifest accepted %s with size %d and media type %q", r.role, r.size, r.mediaType)
			}
		}
		again, err := parseManifest(canonicalManifest(t, p))
		if err != nil {
			t.Fatalf("the canonical form of an accepted manifest is refused: %v", err)
		}
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
func canonicalManifest(t *testing.T, p parsedManifest) []byte {
	desc := func(r reference) ocispec.Descriptor {
		d := ocispec.Descriptor{MediaType: r.mediaType, Digest: r.digest, Size: r.size}
		if r.foreign {
			d.URLs = []string{"https://example.com/layer"}
		}
		return d
	}
	m := map[string]any{"schemaVersion": 2, "mediaType": p.mediaType}
	if p.isIndex {
		ds := []ocispec.Descriptor{}
		for _, r := range p.refs {
			ds = append(ds, desc(r))
		}
		m["manifests"] = ds
	} else {
		m["config"] = desc(p.refs[0])
		ls := []ocispec.Descriptor{}
		for _, r := range p.refs[1:] {
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

// FuzzDecodeImageRecord: bytes read back from bbolt (perhaps damaged)
// decode or are refused as corrupt, never panic; what decodes encodes to
// a record that decodes the same.
func FuzzDecodeImageRecord(f *testing.F) {
	good := imageRecord{id: 7, createdAt: time.Unix(1, 2).UTC(), updatedAt: time.Unix(3, 4).UTC(),
		target: ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.Digest("sha256:" + strings.Repeat("e", 64)), Size: 477}}
	f.Add(good.encode())
	f.Add(good.encode()[:20])
	f.Add([]byte{imageRecordVersion})
	f.Add(append([]byte{imageRecordVersion}, make([]byte, 32+2)...))
	f.Add(append(append([]byte{imageRecordVersion}, make([]byte, 32)...), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodeImageRecord(b)
		if err != nil {
			if !strings.Contains(err.Error(), "image record") {
				t.Fatalf("decodeImageRecord error %q does not say what is corrupt", err)
			}
			return
		}
		again, err := decodeImageRecord(r.encode())
		if err != nil {
			t.Fatalf("a decoded record does not decode once encoded: %v", err)
		}
		if !reflect.DeepEqual(again, r) {
			t.Fatalf("decode(encode(r)) = %+v, r = %+v", again, r)
		}
	})
}

// FuzzImageRecordRoundTrip: every record encodes to bytes that decode to
// it.
func FuzzImageRecordRoundTrip(f *testing.F) {
	f.Add(uint64(1), int64(0), int64(1), int64(477), ocispec.MediaTypeImageManifest, "sha256:"+strings.Repeat("e", 64))
	f.Add(uint64(1<<63), int64(-1), int64(1<<62), int64(-5), "", "")
	f.Fuzz(func(t *testing.T, id uint64, created, updated, size int64, mediaType, dg string) {
		r := imageRecord{id: id, createdAt: time.Unix(0, created).UTC(), updatedAt: time.Unix(0, updated).UTC(),
			target: ocispec.Descriptor{MediaType: mediaType, Digest: digest.Digest(dg), Size: size}}
		got, err := decodeImageRecord(r.encode())
		if err != nil {
			t.Fatalf("decode(encode(%+v)): %v", r, err)
		}
		if !reflect.DeepEqual(got, r) {
			t.Fatalf("decode(encode(r)) = %+v, r = %+v", got, r)
		}
	})
}
