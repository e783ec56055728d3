package imagegraph

import (
	"strings"
	"testing"
)

// A manifest parsers read differently is refused: the same key twice in
// one object, at any depth, and a case variant of a field nsfs reads.
func TestParseManifestRefusesDuplicateKeys(t *testing.T) {
	cfg := `{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:` + strings.Repeat("a", 64) + `","size":2}`
	cfg2 := `{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:` + strings.Repeat("c", 64) + `","size":3}`
	layer := func(extra string) string {
		return `{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:` + strings.Repeat("b", 64) + `","size":10` + extra + `}`
	}
	manifest := func(body string) string { return `{"schemaVersion":2,` + body + `}` }
	for _, tc := range []struct {
		name, data, want string // want: "" accepted, else in the message
	}{
		{"plain", manifest(`"config":` + cfg + `,"layers":[` + layer("") + `,` + layer("") + `]`), ""},
		{"the same key in sibling objects", manifest(`"config":` + cfg + `,"layers":[` + layer(`,"annotations":{"a":"1"}`) + `],"annotations":{"a":"2"}`), ""},
		{"keys differing in case in a map", manifest(`"config":` + cfg + `,"annotations":{"a":"1","A":"2"}`), ""},
		{"an unknown field differing in case from nothing read", manifest(`"config":` + cfg + `,"Annotations":{}`), ""},
		{"a number beyond float64", manifest(`"config":` + cfg + `,"x":1e400`), ""},

		{"two configs", manifest(`"config":` + cfg + `,"config":` + cfg2), `duplicate key "config" at the top level`},
		{"two schemaVersions", `{"schemaVersion":2,"schemaVersion":2,"config":` + cfg + `}`, `duplicate key "schemaVersion" at the top level`},
		{"two mediaTypes", manifest(`"mediaType":"application/vnd.oci.image.manifest.v1+json","config":` + cfg + `,"mediaType":"application/vnd.oci.image.index.v1+json"`), `duplicate key "mediaType" at the top level`},
		{"two digests in a layer", manifest(`"config":` + cfg + `,"layers":[` + layer("") + `,` + layer(`,"digest":"sha256:`+strings.Repeat("d", 64)+`"`) + `]`), `duplicate key "digest" in .layers[1]`},
		{"two sizes in the config", manifest(`"config":` + strings.TrimSuffix(cfg, "}") + `,"size":3}`), `duplicate key "size" in .config`},
		{"deep in annotations", manifest(`"config":` + cfg + `,"layers":[` + layer(`,"annotations":{"k":"1","k":"2"}`) + `]`), `duplicate key "k" in .layers[0].annotations`},
		{"deep in an unknown field", manifest(`"config":` + cfg + `,"x":{"y":[{"z":1,"z":2}]}`), `duplicate key "z" in .x.y[0]`},
		{"an index's manifests", `{"schemaVersion":2,"manifests":[` + strings.TrimSuffix(cfg, "}") + `,"mediaType":"x"}]}`, `duplicate key "mediaType" in .manifests[0]`},
		{"Config for config", manifest(`"Config":` + cfg), `key "Config" at the top level differs from "config" only in case`},
		{"config and CONFIG", manifest(`"config":` + cfg + `,"CONFIG":` + cfg2), `key "CONFIG" at the top level differs from "config" only in case`},
		{"Digest in a layer", manifest(`"config":` + cfg + `,"layers":[` + layer(`,"Digest":"sha256:`+strings.Repeat("d", 64)+`"`) + `]`), `key "Digest" in .layers[0] differs from "digest"`},
		{"long s for s", `{"ſchemaVersion":2,"schemaVersion":2,"config":` + cfg + `}`, `differs from "schemaVersion" only in case`},
	} {
		_, err := Parse([]byte(tc.data))
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: refused: %v", tc.name, err)
		case tc.want != "" && err == nil:
			t.Errorf("%s: accepted, want %q", tc.name, tc.want)
		case tc.want != "" && !strings.Contains(err.Error(), tc.want):
			t.Errorf("%s: error %q, want it to say %q", tc.name, err, tc.want)
		}
	}
}

// Nesting is bounded: 63 levels below the top-level object pass, 64 do not.
func TestParseManifestBoundsNesting(t *testing.T) {
	cfg := `{"mediaType":"x","digest":"sha256:` + strings.Repeat("a", 64) + `","size":2}`
	nested := func(n int) []byte {
		return []byte(`{"schemaVersion":2,"config":` + cfg + `,"x":` + strings.Repeat("[", n) + strings.Repeat("]", n) + `}`)
	}
	if _, err := Parse(nested(maxJSONDepth - 1)); err != nil {
		t.Errorf("%d levels: %v", maxJSONDepth-1, err)
	}
	_, err := Parse(nested(maxJSONDepth))
	if err == nil || !strings.Contains(err.Error(), "nested deeper than 64 levels") {
		t.Errorf("%d levels: %v, want refused as too deep", maxJSONDepth, err)
	}
}
