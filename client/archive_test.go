package client

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nsfs/nsfs/imagegraph"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestNormalizeDockerRef(t *testing.T) {
	t.Parallel()
	const hex = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	for _, tc := range []struct{ in, want, err string }{
		{in: "redis", want: "docker.io/library/redis:latest"},
		{in: "redis:latest", want: "docker.io/library/redis:latest"},
		{in: "redis:7.2-alpine", want: "docker.io/library/redis:7.2-alpine"},
		{in: "library/redis:7", want: "docker.io/library/redis:7"},
		{in: "foo/bar:1", want: "docker.io/foo/bar:1"},
		{in: "docker.io/foo/bar", want: "docker.io/foo/bar:latest"},
		{in: "index.docker.io/foo/bar:2", want: "docker.io/foo/bar:2"},
		{in: "localhost/app", want: "localhost/app:latest"},
		{in: "localhost:5000/team/app:v1", want: "localhost:5000/team/app:v1"},
		{in: "Registry.Example.com/app", want: "Registry.Example.com/app:latest"},
		{in: "[::1]:5000/app:1", want: "[::1]:5000/app:1"},
		{in: "redis@sha256:" + hex, want: "docker.io/library/redis@sha256:" + hex},
		{in: "redis:7@sha256:" + hex, want: "docker.io/library/redis@sha256:" + hex},
		{in: "Redis:latest", err: `repository name "library/Redis" must be lowercase`},
		{in: hex, err: "cannot specify 64-byte hexadecimal strings"},
		{in: "a//b", err: "not a valid image reference"},
		{in: "", err: "not a valid image reference"},
		{in: "redis:", err: "not a valid image reference"},
		{in: "redis@sha256:abc", err: "not a valid image reference"},
		{in: "redis@sha256:" + hex[:60] + "ABCD", err: "invalid digest"},
		{in: strings.Repeat("a", 256), err: "over 255 characters"},
	} {
		got, err := NormalizeDockerRef(tc.in)
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("NormalizeDockerRef(%q) = %q, %v; want error with %q", tc.in, got, err, tc.err)
		case tc.err == "" && (err != nil || got != tc.want):
			t.Errorf("NormalizeDockerRef(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func TestFamiliarDockerRef(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{"docker.io/library/redis:latest", "redis:latest", true},
		{"docker.io/library/redis", "redis:latest", true},
		{"docker.io/foo/bar:1", "foo/bar:1", true},
		{"docker.io/library/foo/bar:1", "library/foo/bar:1", true},
		{"quay.io/x/y:2", "quay.io/x/y:2", true},
		{"localhost:5000/app:v1", "localhost:5000/app:v1", true},
		{"import-2026-11-27:v2", "import-2026-11-27:v2", true},
		{"docker.io/library/redis@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", "", false},
		{"my app/v1", "", false},
		{"foo/Bar:1", "", false},
		{"Upper/case", "Upper/case:latest", true}, // a registry named Upper, to Docker
	} {
		got, ok := FamiliarDockerRef(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("FamiliarDockerRef(%q) = %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func TestOCIRefName(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"docker.io/library/redis:latest":    "latest",
		"localhost:5000/team/app:v1":        "v1",
		"docker.io/library/redis@sha256:ab": "@sha256:ab",
		"example.com/app":                   "example.com/app",
		"redis:latest":                      "redis:latest", // no host: ctr keeps the whole name
		"x":                                 "x",
		"http://example.com/x:1":            "http://example.com/x:1",
	} {
		if got := OCIRefName(in); got != want {
			t.Errorf("OCIRefName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestImportRefTranslator(t *testing.T) {
	t.Parallel()
	tr := ImportRefTranslator("import-2026-11-27")
	for in, want := range map[string]string{
		"latest":                  "import-2026-11-27:latest",
		"v1.2":                    "import-2026-11-27:v1.2",
		"redis:latest":            "redis:latest",
		"example.com/app":         "example.com/app",
		"app@sha256:abc":          "app@sha256:abc",
		"docker.io/library/x:1.0": "docker.io/library/x:1.0",
	} {
		if got := tr(in); got != want {
			t.Errorf("translate(%q) = %q, want %q", in, got, want)
		}
	}
	for _, tc := range []struct {
		ref, prefix string
		want        bool
	}{
		{"foo/bar:1", "foo/bar", true},
		{"foo/bar@sha256:1", "foo/bar", true},
		{"foo/bar/baz:1", "foo/bar", true},
		{"foo/barn:1", "foo/bar", false},
		{"foo/bar", "foo/bar", true},
		{"other:1", "foo/bar", false},
	} {
		if got := hasImagePrefix(tc.ref, tc.prefix); got != tc.want {
			t.Errorf("hasImagePrefix(%q, %q) = %v", tc.ref, tc.prefix, got)
		}
	}
}

// testFile is a member of a tar a test builds.
type testFile struct {
	name, link string
	data       []byte
}

func testTar(t *testing.T, files ...testFile) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		hdr := &tar.Header{Name: f.name, Mode: 0o644, Size: int64(len(f.data)), Typeflag: tar.TypeReg, ModTime: time.Unix(1, 0)}
		if f.link != "" {
			hdr.Typeflag, hdr.Linkname, hdr.Size = tar.TypeSymlink, f.link, 0
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if f.link == "" {
			tw.Write(f.data)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func seeded(seed int64, n int) []byte {
	b := make([]byte, n)
	rand.New(rand.NewSource(seed)).Read(b)
	return b
}

func gz(t *testing.T, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(data)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// planOf scans and plans an archive the way Import does, from a reader
// that is no file (so it is spooled).
func planOf(t *testing.T, archive []byte, prefix string) (*importPlan, error) {
	t.Helper()
	ra, cleanup, err := seekableArchive(context.Background(), bytes.NewReader(archive))
	if err != nil {
		return nil, err
	}
	t.Cleanup(cleanup)
	a, err := scanArchive(context.Background(), ra)
	if err != nil {
		return nil, err
	}
	return a.plan(prefix, false)
}

// TestPlanDockerSave: a docker save archive, gzipped as a whole, with a
// gzipped layer, a plain one, and a symlinked one, gives the manifest
// containerd's importer makes, byte for byte, under the normalized tags.
func TestPlanDockerSave(t *testing.T) {
	t.Parallel()
	plain := testTar(t, testFile{name: "a.bin", data: seeded(1, 3000)})
	zipped := gz(t, testTar(t, testFile{name: "b.bin", data: seeded(2, 3000)}))
	config := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers"}}`)
	cfgHex := digest.FromBytes(config).Encoded()
	archive := testTar(t,
		testFile{name: "l1/layer.tar", data: plain},
		testFile{name: "l2/layer.tar", data: zipped},
		testFile{name: "l3/layer.tar", link: "../l1/layer.tar"},
		testFile{name: cfgHex + ".json", data: config},
		testFile{name: "manifest.json", data: []byte(fmt.Sprintf(`[{"Config":%q,"RepoTags":["redis:latest","example.com/x/y:2"],"Layers":["l1/layer.tar","l2/layer.tar","l3/layer.tar"]}]`, cfgHex+".json"))},
		testFile{name: "repositories", data: []byte(`{}`)},
	)
	p, err := planOf(t, gz(t, archive), "import-x")
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json",`+
		`"config":{"mediaType":"application/vnd.docker.container.image.v1+json","digest":"%s","size":%d},"layers":[`+
		`{"mediaType":"application/vnd.docker.image.rootfs.diff.tar","digest":"%s","size":%d},`+
		`{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","digest":"%s","size":%d},`+
		`{"mediaType":"application/vnd.docker.image.rootfs.diff.tar","digest":"%s","size":%d}]}`,
		digest.FromBytes(config), len(config), digest.FromBytes(plain), len(plain),
		digest.FromBytes(zipped), len(zipped), digest.FromBytes(plain), len(plain))
	wantDigest := digest.FromString(want)
	if len(p.images) != 2 || p.images[0].Ref != "docker.io/library/redis:latest" || p.images[1].Ref != "example.com/x/y:2" {
		t.Fatalf("images %+v, want docker.io/library/redis:latest and example.com/x/y:2", p.images)
	}
	for _, img := range p.images {
		if img.Target.Digest != wantDigest || img.Target.MediaType != imagegraph.MediaTypeDockerManifest {
			t.Errorf("image %s: target %+v, want %s", img.Ref, img.Target, wantDigest)
		}
	}
	if got := string(p.blobs[wantDigest].data); got != want {
		t.Errorf("manifest\n got %s\nwant %s", got, want)
	}
	// Children first; the symlinked layer once.
	if len(p.order) != 4 || p.order[3] != wantDigest {
		t.Errorf("order %v: want config and two layers, then the manifest", p.order)
	}
	for _, d := range p.order[:3] {
		b := p.blobs[d]
		data, _ := io.ReadAll(p.open(b))
		if digest.FromBytes(data) != d {
			t.Errorf("blob %s reads as %s", d, digest.FromBytes(data))
		}
	}
}

// TestPlanOCILayout: names as ctr import gives them; an index with an
// absent child; and the errors that must stop an import before it writes.
func TestPlanOCILayout(t *testing.T) {
	t.Parallel()
	layer, config := seeded(3, 500), []byte(`{"architecture":"arm64","os":"linux"}`)
	manifest := []byte(fmt.Sprintf(`{"schemaVersion":2,"mediaType":%q,"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":%q,"size":%d},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":%q,"size":%d}]}`,
		ocispec.MediaTypeImageManifest, digest.FromBytes(config), len(config), digest.FromBytes(layer), len(layer)))
	absent := digest.FromString("absent")
	index := []byte(fmt.Sprintf(`{"schemaVersion":2,"mediaType":%q,"manifests":[{"mediaType":%q,"digest":%q,"size":%d},{"mediaType":%q,"digest":%q,"size":10}]}`,
		ocispec.MediaTypeImageIndex, ocispec.MediaTypeImageManifest, digest.FromBytes(manifest), len(manifest), ocispec.MediaTypeImageManifest, absent))
	desc := func(mt string, data []byte, ann string) string {
		s := fmt.Sprintf(`{"mediaType":%q,"digest":%q,"size":%d`, mt, digest.FromBytes(data), len(data))
		if ann != "" {
			s += `,"annotations":{` + ann + `}`
		}
		return s + "}"
	}
	indexJSON := `{"schemaVersion":2,"manifests":[` + strings.Join([]string{
		desc(ocispec.MediaTypeImageManifest, manifest, `"org.opencontainers.image.ref.name":"latest"`),
		desc(ocispec.MediaTypeImageIndex, index, `"io.containerd.image.name":"docker.io/library/multi:1","org.opencontainers.image.ref.name":"1"`),
		desc(ocispec.MediaTypeImageManifest, manifest, ""),
		desc(ocispec.MediaTypeImageManifest, manifest, `"org.opencontainers.image.ref.name":"example.com/app:3"`),
	}, ",") + `]}`
	blob := func(data []byte) testFile {
		return testFile{name: "blobs/sha256/" + digest.FromBytes(data).Encoded(), data: data}
	}
	layout := testFile{name: "oci-layout", data: []byte(`{"imageLayoutVersion":"1.0.0"}`)}
	archive := testTar(t, layout, testFile{name: "index.json", data: []byte(indexJSON)}, blob(layer), blob(config), blob(manifest), blob(index))
	p, err := planOf(t, archive, "import-2026-11-27")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, img := range p.images {
		got = append(got, img.Ref+" "+img.Target.Digest.String())
	}
	want := []string{
		"import-2026-11-27:latest " + digest.FromBytes(manifest).String(),
		"docker.io/library/multi:1 " + digest.FromBytes(index).String(),
		"import-2026-11-27@" + digest.FromBytes(manifest).String() + " " + digest.FromBytes(manifest).String(),
		"example.com/app:3 " + digest.FromBytes(manifest).String(),
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("images\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if len(p.order) != 4 || p.order[3] != digest.FromBytes(index) {
		t.Errorf("order %v: want layer, config, manifest, index (the absent child left out)", p.order)
	}

	// What must fail, and how it says so.
	corrupt := blob(layer)
	corrupt.data = append([]byte{'x'}, layer[1:]...)
	noLayer := testTar(t, layout, testFile{name: "index.json", data: []byte(indexJSON)}, blob(config), blob(manifest), blob(index))
	for _, tc := range []struct {
		name    string
		archive []byte
		want    string
	}{
		{"not a tar", seeded(9, 2000), "not a tar archive"},
		{"no layout", testTar(t, testFile{name: "x", data: []byte("x")}), "neither an OCI image layout"},
		{"missing layer", noLayer, fmt.Sprintf(`image "import-2026-11-27:latest" layer 1: blob %s is not in the archive`, digest.FromBytes(layer))},
		{"corrupt layer", testTar(t, layout, testFile{name: "index.json", data: []byte(indexJSON)}, corrupt, blob(config), blob(manifest), blob(index)),
			fmt.Sprintf("blob %s in the archive does not match its digest", digest.FromBytes(layer))},
		{"no index.json", testTar(t, layout, blob(layer)), "OCI image layout without index.json"},
		{"layout version", testTar(t, testFile{name: "oci-layout", data: []byte(`{"imageLayoutVersion":"2.0.0"}`)}), `version "2.0.0" is not supported`},
		{"no images", testTar(t, layout, testFile{name: "index.json", data: []byte(`{"schemaVersion":2,"manifests":[]}`)}), "the archive holds no image"},
		{"not a manifest", testTar(t, layout, testFile{name: "index.json", data: []byte(`{"schemaVersion":2,"manifests":[` + desc("application/octet-stream", layer, "") + `]}`)}, blob(layer)), "not an image manifest or index"},
		{"docker save without config", testTar(t, testFile{name: "manifest.json", data: []byte(`[{"Config":"c.json","RepoTags":["a:1"],"Layers":[]}]`)}), `docker save archive: image a:1: config "c.json" is not in the archive`},
		{"docker save bad tag", testTar(t, testFile{name: "c.json", data: []byte(`{}`)}, testFile{name: "manifest.json", data: []byte(`[{"Config":"c.json","RepoTags":["A:1"],"Layers":[]}]`)}), `must be lowercase`},
	} {
		if _, err := planOf(t, tc.archive, "import-2026-11-27"); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one with %q", tc.name, err, tc.want)
		}
	}
}

// TestSeekableArchiveFile: a regular file is read in place, not copied.
func TestSeekableArchiveFile(t *testing.T) {
	t.Parallel()
	f, err := os.CreateTemp(t.TempDir(), "a.tar")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	data := testTar(t, testFile{name: "x", data: []byte("hello")})
	f.Write(data)
	ra, cleanup, err := seekableArchive(context.Background(), f)
	if err != nil {
		t.Fatal(err)
	}
	defer cleanup()
	if sr, ok := ra.(*io.SectionReader); !ok || sr.Size() != int64(len(data)) {
		t.Fatalf("got %T, want a section of the file itself", ra)
	}
	a, err := scanArchive(context.Background(), ra)
	if err != nil {
		t.Fatal(err)
	}
	e := a.entries["x"]
	got, err := a.readEntry(e, 100)
	if err != nil || string(got) != "hello" || e.digest != digest.FromString("hello") {
		t.Errorf("entry x: %q %v %s", got, err, e.digest)
	}
}

// TestDockerSchema2ManifestJSON pins the JSON shape the docker save
// import writes (containerd's), which decides the image digest.
func TestDockerSchema2ManifestJSON(t *testing.T) {
	t.Parallel()
	m := dockerSchema2Manifest{SchemaVersion: 2, MediaType: imagegraph.MediaTypeDockerManifest,
		Config: ocispec.Descriptor{MediaType: archiveDockerConfig, Digest: digest.FromString("c"), Size: 1},
		Layers: []ocispec.Descriptor{}}
	b, _ := json.Marshal(m)
	want := `{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{"mediaType":"application/vnd.docker.container.image.v1+json","digest":"` + digest.FromString("c").String() + `","size":1},"layers":[]}`
	if string(b) != want {
		t.Errorf("got %s\nwant %s", b, want)
	}
}

// TestPlanIndexDepth: a manifest below imagegraph.MaxIndexDepth nested
// indexes is imported; one index more is refused, and the message names
// the path to it.
func TestPlanIndexDepth(t *testing.T) {
	t.Parallel()
	layer, config := seeded(4, 100), []byte(`{"architecture":"amd64","os":"linux"}`)
	manifest := []byte(fmt.Sprintf(`{"schemaVersion":2,"mediaType":%q,"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":%q,"size":%d},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":%q,"size":%d}]}`,
		ocispec.MediaTypeImageManifest, digest.FromBytes(config), len(config), digest.FromBytes(layer), len(layer)))
	blob := func(data []byte) testFile {
		return testFile{name: "blobs/sha256/" + digest.FromBytes(data).Encoded(), data: data}
	}
	archive := func(indexes int) []byte {
		files := []testFile{{name: "oci-layout", data: []byte(`{"imageLayoutVersion":"1.0.0"}`)}, blob(layer), blob(config), blob(manifest)}
		below, mt := manifest, ocispec.MediaTypeImageManifest
		for i := 0; i < indexes; i++ {
			below = []byte(fmt.Sprintf(`{"schemaVersion":2,"mediaType":%q,"manifests":[{"mediaType":%q,"digest":%q,"size":%d}]}`,
				ocispec.MediaTypeImageIndex, mt, digest.FromBytes(below), len(below)))
			mt = ocispec.MediaTypeImageIndex
			files = append(files, blob(below))
		}
		index := fmt.Sprintf(`{"schemaVersion":2,"manifests":[{"mediaType":%q,"digest":%q,"size":%d,"annotations":{"io.containerd.image.name":"deep:1"}}]}`,
			mt, digest.FromBytes(below), len(below))
		return testTar(t, append(files, testFile{name: "index.json", data: []byte(index)})...)
	}
	p, err := planOf(t, archive(imagegraph.MaxIndexDepth), "x")
	if err != nil {
		t.Fatalf("%d nested indexes: %v", imagegraph.MaxIndexDepth, err)
	}
	if n := len(p.order); n != 3+imagegraph.MaxIndexDepth || p.order[0] != digest.FromBytes(config) || p.order[2] != digest.FromBytes(manifest) {
		t.Errorf("order %v: want config, layer, manifest, then the %d indexes, innermost first", p.order, imagegraph.MaxIndexDepth)
	}
	want := `image "deep:1"` + strings.Repeat(" manifest 1", imagegraph.MaxIndexDepth+1) + ": indexes nested more than 8 deep"
	if _, err := planOf(t, archive(imagegraph.MaxIndexDepth+1), "x"); err == nil || err.Error() != want {
		t.Errorf("%d nested indexes: error %v, want %q", imagegraph.MaxIndexDepth+1, err, want)
	}
}
