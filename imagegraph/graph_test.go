package imagegraph

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/content"
)

// blobMap is a content.Fetcher over bytes by digest that counts reads.
type blobMap struct {
	data  map[digest.Digest][]byte
	reads map[digest.Digest]int
}

func newBlobMap() *blobMap {
	return &blobMap{data: map[digest.Digest][]byte{}, reads: map[digest.Digest]int{}}
}

func (m *blobMap) Fetch(_ context.Context, desc ocispec.Descriptor) (io.ReadCloser, error) {
	b, ok := m.data[desc.Digest]
	if !ok {
		return nil, fmt.Errorf("blob %s: not found", desc.Digest)
	}
	m.reads[desc.Digest]++
	return io.NopCloser(bytes.NewReader(b)), nil
}

// add stores data and describes it as mediaType.
func (m *blobMap) add(mediaType string, data []byte) ocispec.Descriptor {
	d := digest.FromBytes(data)
	m.data[d] = data
	return ocispec.Descriptor{MediaType: mediaType, Digest: d, Size: int64(len(data))}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// manifest stores a config and n layers and the manifest naming them.
func (m *blobMap) manifest(t *testing.T, seed string, n int) ocispec.Descriptor {
	cfg := m.add(ocispec.MediaTypeImageConfig, []byte(`{"seed":"`+seed+`"}`))
	layers := []ocispec.Descriptor{}
	for i := 0; i < n; i++ {
		layers = append(layers, m.add(ocispec.MediaTypeImageLayer, []byte(fmt.Sprintf("%s layer %d", seed, i))))
	}
	return m.add(ocispec.MediaTypeImageManifest, mustJSON(t, map[string]any{
		"schemaVersion": 2, "mediaType": ocispec.MediaTypeImageManifest, "config": cfg, "layers": layers}))
}

// index stores an index of children.
func (m *blobMap) index(t *testing.T, children ...ocispec.Descriptor) ocispec.Descriptor {
	return m.add(ocispec.MediaTypeImageIndex, mustJSON(t, map[string]any{
		"schemaVersion": 2, "mediaType": ocispec.MediaTypeImageIndex, "manifests": children}))
}

// Fetch reads a document only as its descriptor names it: the size and
// digest are checked, and one over MaxDocumentSize is refused unread.
func TestFetchIsVerified(t *testing.T) {
	ctx := context.Background()
	m := newBlobMap()
	desc := m.manifest(t, "a", 1)
	if data, err := Fetch(ctx, m, desc); err != nil || digest.FromBytes(data) != desc.Digest {
		t.Fatalf("Fetch of a good manifest: %v", err)
	}
	good := m.data[desc.Digest]
	for _, tc := range []struct {
		name  string
		bytes []byte
		desc  ocispec.Descriptor
		want  error
	}{
		{"other bytes of the same size", bytes.Replace(good, []byte(`"schemaVersion":2`), []byte(`"schemaVersion":3`), 1), desc, content.ErrMismatchedDigest},
		{"trailing bytes", append(append([]byte(nil), good...), ' '), desc, content.ErrTrailingData},
	} {
		m.data[desc.Digest] = tc.bytes
		if _, err := Fetch(ctx, m, tc.desc); err == nil || !strings.Contains(err.Error(), tc.want.Error()) {
			t.Errorf("%s: Fetch = %v, want %v", tc.name, err, tc.want)
		}
	}
	m.data[desc.Digest] = good
	big := desc
	big.Size = MaxDocumentSize + 1
	reads := m.reads[desc.Digest]
	if _, err := Fetch(ctx, m, big); err == nil || !strings.Contains(err.Error(), "over the 4194304-byte limit") {
		t.Errorf("Fetch of a document over the limit: %v", err)
	}
	if m.reads[desc.Digest] != reads {
		t.Errorf("a document over the limit was read")
	}
}

// Successors: a manifest's config then layers, an index's manifests,
// nothing below a layer; a malformed document is Parse's error.
func TestSuccessors(t *testing.T) {
	ctx := context.Background()
	m := newBlobMap()
	mf := m.manifest(t, "a", 2)
	idx := m.index(t, mf)
	got, err := Successors(ctx, m, mf)
	if err != nil || len(got) != 3 || got[0].Role != "config" || got[1].Role != "layer 1" || got[2].Role != "layer 2" {
		t.Fatalf("Successors(manifest) = %+v, %v", got, err)
	}
	got, err = Successors(ctx, m, idx)
	if err != nil || len(got) != 1 || got[0].Digest != mf.Digest || got[0].Role != "manifest 1" {
		t.Fatalf("Successors(index) = %+v, %v", got, err)
	}
	if got, err := Successors(ctx, m, got[0].Descriptor); err != nil || len(got) != 3 {
		t.Fatalf("Successors(index child) = %+v, %v", got, err)
	}
	layer := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayer, Digest: digest.FromString("x"), Size: 1}
	if got, err := Successors(ctx, m, layer); err != nil || got != nil {
		t.Fatalf("Successors(layer) = %+v, %v (and it must not be read)", got, err)
	}
	bad := m.add(ocispec.MediaTypeImageManifest, []byte(`{"schemaVersion":2}`))
	if _, err := Successors(ctx, m, bad); err == nil || err.Error() != "neither a manifest (no config) nor an index (no manifests)" {
		t.Fatalf("Successors(no config) = %v", err)
	}
}

// The media type is the document's field, else its shape's.
func TestParseInfersMediaTypeFromShape(t *testing.T) {
	cfg := `{"mediaType":"x","digest":"sha256:` + strings.Repeat("a", 64) + `","size":2}`
	for data, want := range map[string]string{
		`{"schemaVersion":2,"config":` + cfg + `}`:                                               ocispec.MediaTypeImageManifest,
		`{"schemaVersion":2,"manifests":[]}`:                                                     ocispec.MediaTypeImageIndex,
		`{"schemaVersion":2,"mediaType":"` + MediaTypeDockerManifest + `","config":` + cfg + `}`: MediaTypeDockerManifest,
		`{"schemaVersion":2,"mediaType":"` + MediaTypeDockerManifestList + `","manifests":[]}`:   MediaTypeDockerManifestList,
	} {
		doc, err := Parse([]byte(data))
		if err != nil || doc.MediaType != want || doc.IsIndex() != IsIndex(want) {
			t.Errorf("Parse(%s) = %+v, %v; want media type %s", data, doc, err, want)
		}
	}
	if _, err := Parse([]byte(`{"schemaVersion":2,"mediaType":"application/json","config":` + cfg + `}`)); err == nil ||
		err.Error() != `media type "application/json" is not an OCI or Docker manifest or index` {
		t.Errorf("a media type of no manifest: %v", err)
	}
}

// Walk reads the documents below an index at most MaxIndexDepth indexes
// deep, each once; what cannot be read is visited without a document.
func TestWalkDepthAndOnce(t *testing.T) {
	ctx := context.Background()
	m := newBlobMap()
	// A manifest below MaxIndexDepth+1 nested indexes, and one beside
	// every index: the one below the deepest index that is read is read,
	// those further down are not.
	leaf := m.manifest(t, "leaf", 1)
	below := leaf
	var chain []ocispec.Descriptor
	for i := 0; i < MaxIndexDepth+1; i++ {
		beside := m.manifest(t, fmt.Sprint("beside ", i), 1)
		below = m.index(t, below, beside, below) // twice: read once
		chain = append([]ocispec.Descriptor{below}, chain...)
	}
	absent := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromString("absent"), Size: 3}
	rootData := mustJSON(t, map[string]any{"schemaVersion": 2, "manifests": []ocispec.Descriptor{chain[0], absent}})
	root, err := Parse(rootData)
	if err != nil {
		t.Fatal(err)
	}
	depthOf := map[digest.Digest]int{}
	withDoc := map[digest.Digest]bool{}
	err = Walk(ctx, m, root, func(parent Document, c Child, depth int, doc *Document) error {
		if d, ok := depthOf[c.Digest]; ok && d != depth {
			t.Errorf("%s visited at depths %d and %d", c.Digest, d, depth)
		}
		depthOf[c.Digest] = depth
		withDoc[c.Digest] = doc != nil
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// chain[i] has i+1 indexes above it (the root's and chain[0..i-1]).
	for i, idx := range chain {
		depth := i + 1
		if depthOf[idx.Digest] != depth {
			t.Errorf("index %d visited at depth %d, want %d", i, depthOf[idx.Digest], depth)
		}
		if read := withDoc[idx.Digest]; read != (depth <= MaxIndexDepth) {
			t.Errorf("index at depth %d: read %v, want %v", depth, read, depth <= MaxIndexDepth)
		}
		if n := m.reads[idx.Digest]; n > 1 {
			t.Errorf("index at depth %d read %d times", depth, n)
		}
	}
	if _, ok := depthOf[leaf.Digest]; ok {
		t.Errorf("the leaf below %d indexes was visited", MaxIndexDepth+2)
	}
	if read, ok := withDoc[absent.Digest]; !ok || read {
		t.Errorf("an absent child: visited %v, with a document %v; want visited without", ok, read)
	}
	stop := fmt.Errorf("stop")
	visits := 0
	if err := Walk(ctx, m, root, func(Document, Child, int, *Document) error { visits++; return stop }); err != stop || visits != 1 {
		t.Errorf("Walk after visit's error: %v, %d visits", err, visits)
	}
}
