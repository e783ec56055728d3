package integration

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Image archives: `nsfs images import` of docker save and OCI layout tars
// built here byte by byte, `nsfs images export`, and skopeo reading what
// export wrote.

const (
	mediaTypeDockerLayerTar = "application/vnd.docker.image.rootfs.diff.tar"
	annotationImageName     = "io.containerd.image.name"
	annotationRefName       = "org.opencontainers.image.ref.name"
)

// archiveFile is one member of a tar built by a test.
type archiveFile struct {
	name     string
	data     []byte
	dir      bool
	linkname string // a symlink
}

// buildTar writes files, in the order given, as a tar.
func archiveTar(t *testing.T, files []archiveFile) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	mtime := time.Unix(1700000000, 0)
	for _, f := range files {
		hdr := &tar.Header{Name: f.name, Mode: 0o644, Size: int64(len(f.data)), ModTime: mtime, Typeflag: tar.TypeReg}
		switch {
		case f.dir:
			hdr.Typeflag, hdr.Mode, hdr.Size = tar.TypeDir, 0o755, 0
		case f.linkname != "":
			hdr.Typeflag, hdr.Linkname, hdr.Size = tar.TypeSymlink, f.linkname, 0
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if hdr.Typeflag == tar.TypeReg {
			if _, err := tw.Write(f.data); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// layerTar is a real, uncompressed layer: a few files of seeded random
// bytes, as `docker save` ships layers.
func archiveLayerTar(t *testing.T, seed int64, files int, size int) []byte {
	t.Helper()
	var fs []archiveFile
	fs = append(fs, archiveFile{name: fmt.Sprintf("layer%d/", seed), dir: true})
	for i := 0; i < files; i++ {
		fs = append(fs, archiveFile{name: fmt.Sprintf("layer%d/file%d.bin", seed, i), data: randomBytes(seed*100+int64(i), size)})
	}
	return archiveTar(t, fs)
}

func archiveGzip(t *testing.T, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	zw.Write(data)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// savedImage is an image as docker holds it: a config naming the diff_ids
// of its uncompressed layers.
type savedImage struct {
	repoTags []string
	config   blob
	layers   []blob // uncompressed tars
}

func newSavedImage(t *testing.T, seed int64, repoTags []string, layers ...blob) savedImage {
	t.Helper()
	img := savedImage{repoTags: repoTags, layers: layers}
	var diffIDs []string
	for _, l := range layers {
		diffIDs = append(diffIDs, l.digest())
	}
	img.config = blob{mediaType: mediaTypeDockerConfig, data: mustJSON(map[string]any{
		"architecture": runtime.GOARCH,
		"os":           "linux",
		"config":       map[string]any{"Labels": map[string]string{"nsfs.test.seed": fmt.Sprint(seed)}},
		"rootfs":       map[string]any{"type": "layers", "diff_ids": diffIDs},
	})}
	return img
}

// containerdManifest is the Docker schema 2 manifest containerd (and so
// nsfs) makes for a docker save image: compact JSON in this field order.
func (img savedImage) containerdManifest(layerTypes ...string) blob {
	var layers []string
	for i, l := range img.layers {
		mt := mediaTypeDockerLayerTar
		if i < len(layerTypes) {
			mt = layerTypes[i]
		}
		layers = append(layers, fmt.Sprintf(`{"mediaType":%q,"digest":%q,"size":%d}`, mt, l.digest(), len(l.data)))
	}
	return blob{mediaType: mediaTypeDockerSchema2, data: []byte(fmt.Sprintf(
		`{"schemaVersion":2,"mediaType":%q,"config":{"mediaType":%q,"digest":%q,"size":%d},"layers":[%s]}`,
		mediaTypeDockerSchema2, mediaTypeDockerConfig, img.config.digest(), len(img.config.data), strings.Join(layers, ",")))}
}

// dockerSaveTar is shaped exactly like the output of `docker save` before
// Docker 25: one directory per layer (VERSION, json, layer.tar), the
// config as <hex>.json, manifest.json and repositories, sorted by name as
// docker writes them. A layer that two images share by content but under
// another v1 id is a symlink to the first copy, as docker writes it.
func dockerSaveTar(t *testing.T, images ...savedImage) []byte {
	t.Helper()
	files := map[string]archiveFile{}
	type entry struct {
		Config   string
		RepoTags []string
		Layers   []string
	}
	var manifest []entry
	repositories := map[string]map[string]string{}
	layerDirByDigest := map[string]string{}
	for i, img := range images {
		e := entry{Config: img.config.hex() + ".json", RepoTags: img.repoTags}
		files[e.Config] = archiveFile{name: e.Config, data: img.config.data}
		parent := ""
		for j, l := range img.layers {
			// v1 ids depend on the image and position, so a shared layer
			// gets a second id: docker then links its layer.tar.
			id := sha256Hex([]byte(fmt.Sprintf("v1-%d-%d-%s", i, j, l.digest())))
			files[id+"/"] = archiveFile{name: id + "/", dir: true}
			files[id+"/VERSION"] = archiveFile{name: id + "/VERSION", data: []byte("1.0")}
			v1 := map[string]any{"id": id, "created": "1970-01-01T00:00:00Z", "os": "linux"}
			if parent != "" {
				v1["parent"] = parent
			}
			files[id+"/json"] = archiveFile{name: id + "/json", data: mustJSON(v1)}
			if first, ok := layerDirByDigest[l.digest()]; ok {
				files[id+"/layer.tar"] = archiveFile{name: id + "/layer.tar", linkname: "../" + first + "/layer.tar"}
			} else {
				layerDirByDigest[l.digest()] = id
				files[id+"/layer.tar"] = archiveFile{name: id + "/layer.tar", data: l.data}
			}
			e.Layers = append(e.Layers, id+"/layer.tar")
			parent = id
		}
		for _, tag := range img.repoTags {
			repo, tg, _ := strings.Cut(tag, ":")
			if repositories[repo] == nil {
				repositories[repo] = map[string]string{}
			}
			repositories[repo][tg] = parent
		}
		manifest = append(manifest, e)
	}
	mj, _ := json.Marshal(manifest)
	files["manifest.json"] = archiveFile{name: "manifest.json", data: mj}
	rj, _ := json.Marshal(repositories)
	files["repositories"] = archiveFile{name: "repositories", data: rj}
	var names []string
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	var list []archiveFile
	for _, n := range names {
		list = append(list, files[n])
	}
	return archiveTar(t, list)
}

// ociLayoutTar is an OCI image layout with the given index.json entries
// and blobs, blobs first (as skopeo writes it), then index.json and
// oci-layout.
func ociLayoutTar(t *testing.T, entries []map[string]any, blobs ...blob) []byte {
	t.Helper()
	files := []archiveFile{{name: "blobs/", dir: true}, {name: "blobs/sha256/", dir: true}}
	seen := map[string]bool{}
	for _, b := range blobs {
		if seen[b.hex()] {
			continue
		}
		seen[b.hex()] = true
		files = append(files, archiveFile{name: "blobs/sha256/" + b.hex(), data: b.data})
	}
	idx := map[string]any{"schemaVersion": 2, "mediaType": mediaTypeOCIIndex, "manifests": entries}
	files = append(files,
		archiveFile{name: "index.json", data: mustJSON(idx)},
		archiveFile{name: "oci-layout", data: []byte(`{"imageLayoutVersion":"1.0.0"}`)})
	return archiveTar(t, files)
}

// indexEntry is an index.json entry for b with annotations k=v pairs.
func archiveIndexEntry(b blob, kv ...string) map[string]any {
	e := map[string]any{"mediaType": b.mediaType, "digest": b.digest(), "size": len(b.data)}
	if len(kv) > 0 {
		ann := map[string]string{}
		for i := 0; i+1 < len(kv); i += 2 {
			ann[kv[i]] = kv[i+1]
		}
		e["annotations"] = ann
	}
	return e
}

// nsfsCLI runs the nsfs command line against d's mount.
func (d *daemon) archiveCLI(t *testing.T, args ...string) result {
	t.Helper()
	return run(t, d.mnt, nsfsBin, append([]string{"--mount", d.mnt}, args...)...)
}

// mustNsfs runs an nsfs command that must succeed; it returns stdout.
func (d *daemon) mustArchiveCLI(t *testing.T, args ...string) string {
	t.Helper()
	r := d.archiveCLI(t, args...)
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("want success without error output, got %s", r)
	}
	return r.stdout
}

// assertImportOutput checks what import printed: one "REF saved" line per
// image, one "MEDIATYPE DIGEST" line per image, and the status line with
// the bytes sent.
func assertImportOutput(t *testing.T, out string, images []string, targets []blob, total string) {
	t.Helper()
	got := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(got) != 2*len(images)+1 {
		t.Fatalf("import printed %d lines, want %d:\n%s", len(got), 2*len(images)+1, out)
	}
	for i, ref := range images {
		if f := strings.Fields(got[i]); len(f) != 2 || f[0] != ref || f[1] != "saved" {
			t.Errorf("import line %d: %q, want %q saved", i+1, got[i], ref)
		}
		if want := targets[i].mediaType + " " + targets[i].digest(); got[len(images)+i] != want {
			t.Errorf("import line %d: %q, want %q", len(images)+i+1, got[len(images)+i], want)
		}
	}
	status := strings.Join(strings.Fields(got[len(got)-1]), " ")
	if !strings.HasPrefix(status, "Completed import") || !strings.Contains(status, "elapsed: ") || !strings.Contains(status, "total: "+total) {
		t.Errorf("import status line %q, want Completed import ... total: %s", status, total)
	}
}

// assertImage checks that image ref of ns holds exactly b (cat, sha256sum).
func (d *daemon) assertArchiveImage(t *testing.T, ns, ref string, b blob) {
	t.Helper()
	data, err := os.ReadFile(d.path(imagePath(ns, ref)))
	if err != nil {
		t.Errorf("image %s in %s: %v", ref, ns, err)
		return
	}
	if !bytes.Equal(data, b.data) {
		t.Errorf("image %s in %s:\n got %s\nwant %s", ref, ns, data, b.data)
	}
}

func archiveHexes(blobs ...blob) []string {
	set := map[string]bool{}
	for _, b := range blobs {
		set[b.hex()] = true
	}
	var out []string
	for h := range set {
		out = append(out, h)
	}
	sort.Strings(out)
	return out
}

// TestImportDockerSave imports an archive shaped exactly like `docker
// save` of two images that share a layer (once as a symlink): each
// RepoTag becomes a normalized ref whose bytes are the manifest ctr import
// makes, the blobs are the configs and layers; a second import sends
// nothing.
func TestImportDockerSave(t *testing.T) {
	t.Parallel()
	d := startNsfs(t)
	shared := blob{mediaType: mediaTypeDockerLayerTar, data: archiveLayerTar(t, 1, 3, 40<<10)}
	redis := newSavedImage(t, 1, []string{"redis:latest", "redis:7"}, shared,
		blob{mediaType: mediaTypeDockerLayerTar, data: archiveLayerTar(t, 2, 2, 8<<10)})
	app := newSavedImage(t, 2, []string{"example.com/team/app:v1"}, shared,
		blob{mediaType: mediaTypeDockerLayerTar, data: archiveLayerTar(t, 3, 1, 1<<10)})
	archive := writeTemp(t, "save.tar", dockerSaveTar(t, redis, app))
	// It really is shaped like docker's: layer dirs, a symlinked layer.
	members := mustRun(t, "", "tar", "-tvf", archive)
	for _, want := range []string{"/VERSION", "/json", "/layer.tar -> ../", "manifest.json", "repositories", redis.config.hex() + ".json"} {
		if !strings.Contains(members, want) {
			t.Fatalf("docker save archive has no %q:\n%s", want, members)
		}
	}

	out := d.mustArchiveCLI(t, "images", "import", archive)
	redisM, appM := redis.containerdManifest(), app.containerdManifest()
	total := progressBytes(blobsSize(shared, redis.layers[1], app.layers[1], redis.config, app.config, redisM, appM))
	assertImportOutput(t, out,
		[]string{"docker.io/library/redis:latest", "docker.io/library/redis:7", "example.com/team/app:v1"},
		[]blob{redisM, redisM, appM}, total)

	m := d.mnt
	assertOutput(t, "find images", mustRun(t, m, "find", "ns/default/images", "-type", "f"),
		lines(imagePath("default", "docker.io/library/redis:7"), imagePath("default", "docker.io/library/redis:latest"),
			imagePath("default", "example.com/team/app:v1")))
	d.assertArchiveImage(t, "default", "docker.io/library/redis:latest", redisM)
	d.assertArchiveImage(t, "default", "docker.io/library/redis:7", redisM)
	d.assertArchiveImage(t, "default", "example.com/team/app:v1", appM)
	assertOutput(t, "sha256sum of redis:latest",
		mustRun(t, m, "sha256sum", imagePath("default", "docker.io/library/redis:latest")),
		redisM.hex()+"  "+imagePath("default", "docker.io/library/redis:latest")+"\n")
	assertOutput(t, "ls blobs/sha256", mustRun(t, m, "ls", "ns/default/blobs/sha256"),
		lines(archiveHexes(redis.config, app.config, shared, redis.layers[1], app.layers[1], redisM, appM)...))
	for _, l := range append(redis.layers, app.layers[1]) {
		if got, err := os.ReadFile(d.path(blobPath("default", l.hex()))); err != nil || !bytes.Equal(got, l.data) {
			t.Errorf("layer %s: %d bytes (%v), want the %d bytes of the layer.tar", l.hex(), len(got), err, len(l.data))
		}
	}

	// Again, gzipped, from a pipe, into another namespace: the store has
	// every blob, so nothing is sent.
	zipped := writeTemp(t, "save.tar.gz", archiveGzip(t, readArchiveFile(t, archive)))
	out = mustSh(t, m, fmt.Sprintf("cat %s | %s --mount %s -n second images import -", zipped, nsfsBin, m))
	assertImportOutput(t, out,
		[]string{"docker.io/library/redis:latest", "docker.io/library/redis:7", "example.com/team/app:v1"},
		[]blob{redisM, redisM, appM}, "0.0 B")
	d.assertArchiveImage(t, "second", "example.com/team/app:v1", appM)
}

// TestImportOCILayout imports an OCI layout tar, from a pipe: names come
// from io.containerd.image.name, else from ref.name (a bare tag goes into
// --base-name), else "<base>@<digest>"; an index comes with the one
// platform the archive holds, and stays the image's target.
func TestImportOCILayout(t *testing.T) {
	t.Parallel()
	d := startNsfs(t)
	a := newImage(11, "amd64", 3<<10, 5<<10)
	b := newDockerImage(12, "amd64", 2<<10)
	c := newImage(13, "amd64", 1<<10)
	here, there := newImage(14, "amd64", 4<<10), newImage(15, "arm64", 4<<10)
	idx := newIndex(here, there)
	var blobs []blob
	for _, img := range []testImage{a, b, c, here} {
		blobs = append(blobs, img.blobs()...)
	}
	blobs = append(blobs, idx)
	archive := writeTemp(t, "oci.tar", ociLayoutTar(t, []map[string]any{
		archiveIndexEntry(a.manifest, annotationImageName, "docker.io/library/alpha:1", annotationRefName, "1"),
		archiveIndexEntry(b.manifest, annotationRefName, "v2"),
		archiveIndexEntry(c.manifest, annotationRefName, "registry.example/x/charlie:3"),
		archiveIndexEntry(idx, annotationImageName, "docker.io/library/multi:latest"),
		archiveIndexEntry(a.manifest),
	}, blobs...))

	out := mustSh(t, d.mnt, fmt.Sprintf("%s --mount %s images import --base-name example.com/bravo - < %s", nsfsBin, d.mnt, archive))
	refs := []string{"docker.io/library/alpha:1", "example.com/bravo:v2", "registry.example/x/charlie:3",
		"docker.io/library/multi:latest", "example.com/bravo@" + a.manifest.digest()}
	// --base-name leaves out a full ref name outside it: charlie.
	if strings.Contains(out, "charlie") {
		t.Errorf("--base-name example.com/bravo imported registry.example/x/charlie:3:\n%s", out)
	}
	assertImportOutput(t, out, []string{refs[0], refs[1], refs[3], refs[4]},
		[]blob{a.manifest, b.manifest, idx, a.manifest}, "")
	d.assertArchiveImage(t, "default", refs[0], a.manifest)
	d.assertArchiveImage(t, "default", refs[1], b.manifest)
	d.assertArchiveImage(t, "default", refs[3], idx)
	d.assertArchiveImage(t, "default", refs[4], a.manifest)

	// Without --base-name, from a file: the bare tag goes into
	// import-<date>, as ctr import does.
	before := time.Now().Format("2006-01-02")
	out = d.mustArchiveCLI(t, "-n", "plain", "images", "import", archive)
	after := time.Now().Format("2006-01-02")
	m := regexp.MustCompile(`(?m)^import-(\d{4}-\d{2}-\d{2}):v2 +saved$`).FindStringSubmatch(out)
	if m == nil || (m[1] != before && m[1] != after) {
		t.Fatalf("import without --base-name did not name the bare tag v2 import-%s:v2:\n%s", after, out)
	}
	date := m[1]
	d.assertArchiveImage(t, "plain", refs[2], c.manifest)
	wantBlobs := append(append(append(a.blobs(), b.blobs()...), c.blobs()...), here.blobs()...)
	assertOutput(t, "ls blobs/sha256 of plain (the arm64 manifest is not in the archive)",
		mustRun(t, d.mnt, "ls", "ns/plain/blobs/sha256"), lines(archiveHexes(append(wantBlobs, idx)...)...))
	var want []string
	for _, ref := range []string{refs[0], "import-" + date + ":v2", refs[2], refs[3], "import-" + date + "@" + a.manifest.digest()} {
		want = append(want, imagePath("plain", ref))
	}
	assertOutput(t, "find images of plain", mustSh(t, d.mnt, "find ns/plain/images -type f | LC_ALL=C sort"), lines(sortStrings(want)...))
}

// TestImportBadArchive: what is not an image archive, or one that names a
// blob it lacks or holds a blob that does not match its digest, is one
// error line and exit status 1, and nothing is imported — not even the
// namespace is created.
func TestImportBadArchive(t *testing.T) {
	t.Parallel()
	d := startNsfs(t)
	img := newImage(21, "amd64", 2<<10, 3<<10)
	good := ociLayoutTar(t, []map[string]any{archiveIndexEntry(img.manifest, annotationImageName, "docker.io/library/good:1")}, img.blobs()...)
	// A valid image already there must stay as it is.
	d.mustArchiveCLI(t, "images", "import", writeTemp(t, "good.tar", good))

	bad := newImage(22, "amd64", 2<<10, 3<<10)
	corrupt := bad.layers[1]
	corrupt.data = append([]byte("x"), corrupt.data[1:]...)
	missingLayer := []blob{bad.config, bad.manifest, bad.layers[0]}
	saved := newSavedImage(t, 23, []string{"saved:1"}, blob{mediaType: mediaTypeDockerLayerTar, data: archiveLayerTar(t, 23, 1, 100)})
	savedNoLayer := archiveTar(t, []archiveFile{
		{name: saved.config.hex() + ".json", data: saved.config.data},
		{name: "manifest.json", data: []byte(fmt.Sprintf(`[{"Config":%q,"RepoTags":["saved:1"],"Layers":["abc/layer.tar"]}]`, saved.config.hex()+".json"))},
	})
	cases := []struct {
		name, data, want string
	}{
		{"not a tar", string(randomBytes(24, 4096)), "not a tar archive"},
		{"empty", "", "neither an OCI image layout"},
		{"neither layout", string(archiveTar(t, []archiveFile{{name: "hello.txt", data: []byte("hi")}})), "neither an OCI image layout (no oci-layout and index.json) nor a docker save archive (no manifest.json)"},
		{"missing blob", string(ociLayoutTar(t, []map[string]any{archiveIndexEntry(bad.manifest, annotationImageName, "docker.io/library/bad:1")}, missingLayer...)),
			fmt.Sprintf(`image "docker.io/library/bad:1" layer 2: blob %s is not in the archive`, bad.layers[1].digest())},
		{"corrupt blob", string(archiveTar(t, []archiveFile{
			{name: "oci-layout", data: []byte(`{"imageLayoutVersion":"1.0.0"}`)},
			{name: "index.json", data: mustJSON(map[string]any{"schemaVersion": 2, "manifests": []any{archiveIndexEntry(bad.manifest, annotationRefName, "docker.io/library/bad:1")}})},
			{name: "blobs/sha256/" + bad.config.hex(), data: bad.config.data},
			{name: "blobs/sha256/" + bad.manifest.hex(), data: bad.manifest.data},
			{name: "blobs/sha256/" + bad.layers[0].hex(), data: bad.layers[0].data},
			{name: "blobs/sha256/" + bad.layers[1].hex(), data: corrupt.data},
		})), fmt.Sprintf("blob %s in the archive does not match its digest", bad.layers[1].digest())},
		{"docker save without its layer", string(savedNoLayer), `docker save archive: image saved:1: layer "abc/layer.tar" is not in the archive`},
		{"truncated", string(good[:len(good)/2]), "reading"},
		{"bad ref", string(ociLayoutTar(t, []map[string]any{archiveIndexEntry(bad.manifest, annotationImageName, "docker.io//bad:1")}, bad.blobs()...)),
			`image "docker.io//bad:1" of the archive cannot be an nsfs ref`},
	}
	before := d.state(t)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			file := writeTemp(t, "bad.tar", []byte(tc.data))
			for _, ns := range []string{"default", "fresh"} {
				r := d.archiveCLI(t, "-n", ns, "images", "import", file)
				if r.code != 1 || r.stdout != "" || !strings.HasPrefix(r.stderr, "nsfs: import "+file+": ") ||
					!strings.Contains(r.stderr, tc.want) || strings.Count(r.stderr, "\n") != 1 {
					t.Errorf("want exit 1 and one line \"nsfs: import %s: ...%s...\", got %s", file, tc.want, r)
				}
			}
			d.assertUnchanged(t, "import of a bad archive", before)
		})
	}
	failArchiveCLI(t, d, "nsfs: import /nonexistent.tar: no such file or directory", "images", "import", "/nonexistent.tar")
	d.assertUnchanged(t, "import of a missing file", before)
	// A directory is no archive (QA 3, finding 12).
	dir := t.TempDir()
	failArchiveCLI(t, d, "nsfs: import "+dir+": is a directory", "images", "import", dir)
	d.assertUnchanged(t, "import of a directory", before)
}

// TestImportRollsBackImages: an archive whose images cannot all be
// written (here "x/y" below its image "x") is refused before anything is
// written; were the filesystem to refuse an image after others were
// written, those would be removed again.
func TestImportRollsBackImages(t *testing.T) {
	t.Parallel()
	d := startNsfs(t)
	a, b := newImage(31, "amd64", 1<<10), newImage(32, "amd64", 1<<10)
	archive := writeTemp(t, "conflict.tar", ociLayoutTar(t, []map[string]any{
		archiveIndexEntry(a.manifest, annotationImageName, "x"),
		archiveIndexEntry(b.manifest, annotationImageName, "x/y"),
	}, append(a.blobs(), b.blobs()...)...))
	r := d.archiveCLI(t, "images", "import", archive)
	if r.code != 1 || r.stderr != "nsfs: import "+archive+": image \"x/y\": invalid reference: a prefix of it, \"x\", is also an image of the archive\n" {
		t.Errorf("want exit 1 naming image \"x/y\" and \"x\" in one line, got %s", r)
	}
	assertOutput(t, "find images after the failed import", mustRun(t, d.mnt, "find", "ns/default/images", "-type", "f"), "")
}

func failArchiveCLI(t *testing.T, d *daemon, wantLine string, args ...string) {
	t.Helper()
	r := d.archiveCLI(t, args...)
	if r.code != 1 || r.stderr != wantLine+"\n" {
		t.Errorf("want exit 1 and %q, got %s", wantLine, r)
	}
}

// tarMembers lists a tar's members: name and, for files, content.
func archiveMembers(t *testing.T, data []byte) ([]string, map[string][]byte) {
	t.Helper()
	var names []string
	files := map[string][]byte{}
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("export is not a tar: %v", err)
		}
		names = append(names, hdr.Name)
		if hdr.Typeflag == tar.TypeReg {
			files[hdr.Name], _ = io.ReadAll(tr)
		}
	}
	return names, files
}

// skopeo runs skopeo with a policy that accepts anything (no signatures here).
func runSkopeo(t *testing.T, args ...string) result {
	t.Helper()
	if _, err := exec.LookPath("skopeo"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("skopeo is not installed")
		}
		t.Skip("skopeo is not installed")
	}
	policy := writeTemp(t, "policy.json", []byte(`{"default":[{"type":"insecureAcceptAnything"}]}`))
	return run(t, "", "skopeo", append([]string{"--policy", policy}, args...)...)
}

// TestExportArchive exports three images by four names (two Docker
// schema 2 images from a docker save, one OCI image): the tar is an OCI
// layout with containerd's annotations and Docker's manifest.json; skopeo
// reads it both as oci-archive: and as docker-archive:, and gets the same
// manifest, config and layers; importing it into another namespace gives
// the same refs and digests; stdout gets the same bytes.
func TestExportArchive(t *testing.T) {
	t.Parallel()
	d := startNsfs(t)
	shared := blob{mediaType: mediaTypeDockerLayerTar, data: archiveLayerTar(t, 41, 2, 16<<10)}
	redis := newSavedImage(t, 41, []string{"redis:latest"}, shared, blob{mediaType: mediaTypeDockerLayerTar, data: archiveLayerTar(t, 42, 1, 4<<10)})
	app := newSavedImage(t, 42, []string{"example.com/team/app:v1"}, shared)
	d.mustArchiveCLI(t, "images", "import", writeTemp(t, "save.tar", dockerSaveTar(t, redis, app)))
	mustRun(t, d.mnt, "ln", imagePath("default", "docker.io/library/redis:latest"), imagePath("default", "docker.io/library/redis:7"))
	redisM, appM := redis.containerdManifest(), app.containerdManifest()
	oci := newImage(43, runtime.GOARCH, 3<<10, 6<<10)
	d.putImage(t, "default", "example.com/oci:v3", oci)

	refs := []string{"docker.io/library/redis:latest", "example.com/team/app:v1", "docker.io/library/redis:7", "example.com/oci:v3"}
	file := filepath.Join(t.TempDir(), "out.tar")
	d.mustArchiveCLI(t, append([]string{"images", "export", file}, refs...)...)
	data := readArchiveFile(t, file)
	names, files := archiveMembers(t, data)
	all := append([]blob{redisM, appM, redis.config, app.config, shared, redis.layers[1]}, oci.blobs()...)
	want := []string{"blobs/", "blobs/sha256/"}
	for _, h := range archiveHexes(all...) {
		want = append(want, "blobs/sha256/"+h)
	}
	want = append(want, "index.json", "manifest.json", "oci-layout")
	assertOutput(t, "members of the export", strings.Join(names, "\n"), strings.Join(want, "\n"))
	for _, b := range all {
		if !bytes.Equal(files["blobs/sha256/"+b.hex()], b.data) {
			t.Errorf("blobs/sha256/%s in the export is not the blob", b.hex())
		}
	}
	assertOutput(t, "oci-layout", string(files["oci-layout"]), `{"imageLayoutVersion":"1.0.0"}`)
	var index struct {
		Manifests []struct {
			MediaType   string            `json:"mediaType"`
			Digest      string            `json:"digest"`
			Size        int               `json:"size"`
			Annotations map[string]string `json:"annotations"`
		} `json:"manifests"`
	}
	if err := json.Unmarshal(files["index.json"], &index); err != nil {
		t.Fatalf("index.json: %v", err)
	}
	var gotIndex []string
	for _, m := range index.Manifests {
		gotIndex = append(gotIndex, fmt.Sprintf("%s %s %d %s %s", m.MediaType, m.Digest, m.Size, m.Annotations[annotationImageName], m.Annotations[annotationRefName]))
	}
	assertOutput(t, "index.json", strings.Join(gotIndex, "\n"), strings.Join([]string{
		fmt.Sprintf("%s %s %d docker.io/library/redis:latest latest", mediaTypeDockerSchema2, redisM.digest(), len(redisM.data)),
		fmt.Sprintf("%s %s %d example.com/team/app:v1 v1", mediaTypeDockerSchema2, appM.digest(), len(appM.data)),
		fmt.Sprintf("%s %s %d docker.io/library/redis:7 7", mediaTypeDockerSchema2, redisM.digest(), len(redisM.data)),
		fmt.Sprintf("%s %s %d example.com/oci:v3 v3", mediaTypeOCIManifest, oci.manifest.digest(), len(oci.manifest.data)),
	}, "\n"))
	wantManifest := fmt.Sprintf(`[{"Config":"blobs/sha256/%s","RepoTags":["redis:latest","redis:7"],"Layers":["blobs/sha256/%s","blobs/sha256/%s"]},`+
		`{"Config":"blobs/sha256/%s","RepoTags":["example.com/team/app:v1"],"Layers":["blobs/sha256/%s"]},`+
		`{"Config":"blobs/sha256/%s","RepoTags":["example.com/oci:v3"],"Layers":["blobs/sha256/%s","blobs/sha256/%s"]}]`,
		redis.config.hex(), shared.hex(), redis.layers[1].hex(), app.config.hex(), shared.hex(),
		oci.config.hex(), oci.layers[0].hex(), oci.layers[1].hex())
	assertOutput(t, "manifest.json", string(files["manifest.json"]), wantManifest)

	// To stdout: the same bytes.
	out := mustSh(t, d.mnt, fmt.Sprintf("%s --mount %s images export - %s | sha256sum", nsfsBin, d.mnt, strings.Join(refs, " ")))
	assertOutput(t, "sha256sum of export to stdout", out, sha256Hex(data)+"  -\n")

	// skopeo, oci-archive: by ref name gives our manifest, byte for byte.
	// (skopeo looks names up only among OCI manifests and indexes.)
	assertSkopeoDir(t, "oci-archive:"+file+":v3", oci.manifest, oci.config, oci.layers...)
	// docker-archive: by RepoTag. A docker archive holds no manifest, so
	// skopeo makes one, of the same config and layers.
	assertSkopeoDir(t, "docker-archive:"+file+":redis:latest", blob{}, redis.config, redis.layers...)
	assertSkopeoDir(t, "docker-archive:"+file+":example.com/oci:v3", blob{}, oci.config, oci.layers...)
	// A Docker image alone in an archive: oci-archive: without a name.
	single := filepath.Join(t.TempDir(), "single.tar")
	d.mustArchiveCLI(t, "images", "export", single, "docker.io/library/redis:latest")
	assertSkopeoDir(t, "oci-archive:"+single, redisM, redis.config, redis.layers...)
	assertSkopeoDir(t, "docker-archive:"+single, blob{}, redis.config, redis.layers...)

	// Round trip: into another namespace, the same refs and digests.
	out = d.mustArchiveCLI(t, "-n", "copy", "images", "import", file)
	assertImportOutput(t, out, refs, []blob{redisM, appM, redisM, oci.manifest}, "0.0 B")
	d.assertArchiveImage(t, "copy", "docker.io/library/redis:latest", redisM)
	d.assertArchiveImage(t, "copy", "docker.io/library/redis:7", redisM)
	d.assertArchiveImage(t, "copy", "example.com/team/app:v1", appM)
	d.assertArchiveImage(t, "copy", "example.com/oci:v3", oci.manifest)
	assertOutput(t, "ls blobs of the copy", mustRun(t, d.mnt, "ls", "ns/copy/blobs/sha256"),
		mustRun(t, d.mnt, "ls", "ns/default/blobs/sha256"))
}

// assertSkopeoDir copies src with skopeo into a dir: and checks what it
// wrote: the manifest (when one is given; else one naming config and
// layers), the config and the layers, byte for byte.
func assertSkopeoDir(t *testing.T, src string, manifestBlob blob, config blob, layers ...blob) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "dir")
	if r := runSkopeo(t, "copy", src, "dir:"+dir); r.code != 0 {
		t.Errorf("skopeo copy %s: %s", src, r)
		return
	}
	got := readArchiveFile(t, filepath.Join(dir, "manifest.json"))
	if manifestBlob.data != nil && !bytes.Equal(got, manifestBlob.data) {
		t.Errorf("skopeo copy %s gave manifest\n%s\nwant\n%s", src, got, manifestBlob.data)
	}
	var m manifest
	if err := json.Unmarshal(got, &m); err != nil {
		t.Fatal(err)
	}
	ok := m.Config != nil && m.Config.Digest == config.digest() && len(m.Layers) == len(layers)
	for i := 0; ok && i < len(layers); i++ {
		ok = m.Layers[i].Digest == layers[i].digest()
	}
	if !ok {
		t.Errorf("skopeo copy %s gave manifest %s, want config %s and the layers %v", src, got, config.digest(), archiveHexes(layers...))
	}
	for _, b := range append([]blob{config}, layers...) {
		if data, err := os.ReadFile(filepath.Join(dir, b.hex())); err != nil || !bytes.Equal(data, b.data) {
			t.Errorf("skopeo copy %s: blob %s differs (%v)", src, b.hex(), err)
		}
	}
}

func readArchiveFile(t *testing.T, p string) []byte {
	t.Helper()
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestExportIndex exports an image whose target is an index of which the
// namespace holds one platform: the index goes with that manifest,
// Docker's manifest.json names it, skopeo reads it, and the round trip
// keeps the index as the target.
func TestExportIndex(t *testing.T) {
	t.Parallel()
	d := startNsfs(t)
	other := "arm64"
	if runtime.GOARCH == "arm64" {
		other = "amd64"
	}
	host, away := newImage(51, runtime.GOARCH, 3<<10, 2<<10), newImage(52, other, 3<<10)
	idx := newIndex(away, host)
	d.putImage(t, "default", "docker.io/library/single:1", host) // the host's manifest, held
	d.putManifest(t, "default", "docker.io/library/multi:1", idx.data)

	file := filepath.Join(t.TempDir(), "multi.tar")
	d.mustArchiveCLI(t, "images", "export", file, "docker.io/library/multi:1")
	names, files := archiveMembers(t, readArchiveFile(t, file))
	var want []string
	want = append(want, "blobs/", "blobs/sha256/")
	for _, h := range archiveHexes(append(host.blobs(), idx)...) {
		want = append(want, "blobs/sha256/"+h)
	}
	want = append(want, "index.json", "manifest.json", "oci-layout")
	assertOutput(t, "members of the export of an index", strings.Join(names, "\n"), strings.Join(want, "\n"))
	assertOutput(t, "manifest.json of an index", string(files["manifest.json"]), fmt.Sprintf(
		`[{"Config":"blobs/sha256/%s","RepoTags":["multi:1"],"Layers":["blobs/sha256/%s","blobs/sha256/%s"]}]`,
		host.config.hex(), host.layers[0].hex(), host.layers[1].hex()))

	// skopeo picks the host's manifest from the index.
	assertSkopeoDir(t, "oci-archive:"+file+":1", host.manifest, host.config, host.layers...)
	assertSkopeoDir(t, "docker-archive:"+file, blob{}, host.config, host.layers...)

	// --platform P names P's manifest, or fails naming P and the image
	// when the index has none or the namespace does not hold it (s14,
	// finding 5: it exported the host's instead); no file is left.
	hostFile := filepath.Join(t.TempDir(), "host.tar")
	d.mustArchiveCLI(t, "images", "export", "--platform", "linux/"+runtime.GOARCH, hostFile, "docker.io/library/multi:1")
	if !bytes.Equal(readArchiveFile(t, hostFile), readArchiveFile(t, file)) {
		t.Errorf("export --platform linux/%s differs from the export for the host's platform", runtime.GOARCH)
	}
	dir := t.TempDir()
	refused := filepath.Join(dir, "refused.tar")
	before := d.state(t)
	failArchiveCLI(t, d, fmt.Sprintf(`nsfs: export %s: image "docker.io/library/multi:1" has no manifest for platform linux/s390x (its index names linux/%s, linux/%s)`, refused, other, runtime.GOARCH),
		"images", "export", "--platform", "linux/s390x", refused, "docker.io/library/multi:1")
	failArchiveCLI(t, d, fmt.Sprintf(`nsfs: export %s: image "docker.io/library/multi:1": the manifest for platform linux/%s is not in the namespace (pull it with --platform linux/%s)`, refused, other, other),
		"images", "export", "--platform", "linux/"+other, refused, "docker.io/library/multi:1")
	d.assertUnchanged(t, "the refused exports", before)
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("refused exports left %v in %s", entries, dir)
	}

	out := d.mustArchiveCLI(t, "-n", "copy", "images", "import", file)
	assertImportOutput(t, out, []string{"docker.io/library/multi:1"}, []blob{idx}, "0.0 B")
	d.assertArchiveImage(t, "copy", "docker.io/library/multi:1", idx)
	assertOutput(t, "ls blobs of the copy", mustRun(t, d.mnt, "ls", "ns/copy/blobs/sha256"), lines(archiveHexes(append(host.blobs(), idx)...)...))
}

// TestExportErrors: an unknown ref, or no ref, is one error line, exit
// status 1, and no file.
func TestExportErrors(t *testing.T) {
	t.Parallel()
	d := startNsfs(t)
	img := newImage(61, "amd64", 1<<10)
	d.putImage(t, "default", "docker.io/library/there:1", img)
	dir := t.TempDir()
	file := filepath.Join(dir, "out.tar")
	failArchiveCLI(t, d, fmt.Sprintf(`nsfs: export %s: image "docker.io/library/missing:1": not found in namespace "default"`, file),
		"images", "export", file, "docker.io/library/there:1", "docker.io/library/missing:1")
	failArchiveCLI(t, d, `nsfs: images export: an output file (or - for stdout) and at least one ref are needed (usage: nsfs images export FILE|- REF...)`,
		"images", "export", file)
	failArchiveCLI(t, d, fmt.Sprintf(`nsfs: export %s: namespace "nope": not found`, file),
		"-n", "nope", "images", "export", file, "docker.io/library/there:1")
	// FILE's own path is named, never the temporary file beside it (QA 3,
	// finding 12).
	failArchiveCLI(t, d, "nsfs: export /nonexistent/dir/x.tar: no such file or directory",
		"images", "export", "/nonexistent/dir/x.tar", "docker.io/library/there:1")
	failArchiveCLI(t, d, fmt.Sprintf("nsfs: export %s: is a directory", dir),
		"images", "export", dir, "docker.io/library/there:1")
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("failed exports left %v in %s", entries, dir)
	}
}

// interruptCLI runs `nsfs --mount MNT ARGS...`, waits until ready says the
// command is in the middle of its work, then sends SIGINT — with the
// daemon stopped (SIGSTOP) meanwhile, so that the command cannot finish
// before the signal arrives — and returns how the command ended.
func interruptCLI(t *testing.T, d *daemon, ready func() bool, args ...string) result {
	t.Helper()
	cmd := childCommand(nsfsBin, append([]string{"--mount", d.mnt}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	exited := startBackground(t, cmd)
	stopped := false
	t.Cleanup(func() { // runs before startBackground's, which kills the command and waits for it
		if stopped {
			_ = d.cmd.Process.Signal(syscall.SIGCONT)
		}
	})
	r := result{cmdline: "nsfs " + shortArgs(args)}
	for deadline := time.Now().Add(30 * time.Second); !ready(); time.Sleep(2 * time.Millisecond) {
		select {
		case <-exited:
			t.Fatalf("%s ended before it could be interrupted: exit %d\nstdout: %s\nstderr: %s", r.cmdline, cmd.ProcessState.ExitCode(), &stdout, &stderr)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not under way after 30 s", r.cmdline)
		}
	}
	// Stopped, the daemon answers nothing: the command can finish only
	// once it runs again, and by then it has had the signal.
	if err := d.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	stopped = true
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	// The daemon runs again once the command's handler has taken the
	// signal.
	waitSignalHandled(t, cmd.Process.Pid)
	if err := d.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	stopped = false
	select {
	case <-exited:
	case <-time.After(15 * time.Second):
		t.Fatalf("%s still running 15 s after SIGINT", r.cmdline)
	}
	r.stdout, r.stderr, r.code = stdout.String(), stderr.String(), cmd.ProcessState.ExitCode()
	return r
}

// waitSignalHandled polls /proc/PID/status until no signal is pending for
// the process: its handler took SIGINT. A process without a handler
// keeps it pending while it waits for the stopped daemon: after 5 s the
// caller goes on, and finds out how the process ended.
func waitSignalHandled(t *testing.T, pid int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			return // gone
		}
		pending := false
		for _, line := range strings.Split(string(status), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && (k == "ShdPnd" || k == "SigPnd") && strings.Trim(strings.TrimSpace(v), "0") != "" {
				pending = true
			}
		}
		if !pending {
			return
		}
		if time.Now().After(deadline) {
			t.Logf("SIGINT still pending for pid %d after 5 s", pid)
			return
		}
	}
}

// TestExportInterrupted: SIGINT during the export of a big image cancels
// it: one line, exit status 1, and neither FILE nor the temporary file
// beside it is left (QA 3, finding 2).
func TestExportInterrupted(t *testing.T) {
	t.Parallel()
	d := startNsfs(t)
	// Four big layers: once the temporary file holds a megabyte the export
	// is in the first of them, and must still open the others (which a
	// stopped daemon does not answer).
	img := newImage(97, "amd64", 16<<20, 16<<20, 16<<20, 16<<20)
	d.putImage(t, "default", "big:v1", img)
	dir := t.TempDir()
	file := filepath.Join(dir, "big.tar")
	r := interruptCLI(t, d, func() bool {
		tmps, _ := filepath.Glob(filepath.Join(dir, ".big.tar.tmp-*"))
		for _, tmp := range tmps {
			if fi, err := os.Stat(tmp); err == nil && fi.Size() >= 1<<20 {
				return true
			}
		}
		return false
	}, "images", "export", file, "big:v1")
	if r.code != 1 || r.stderr != "nsfs: export "+file+": interrupted\n" {
		t.Errorf("want exit 1 and \"nsfs: export %s: interrupted\", got %s", file, r)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("the interrupted export left %v in %s", entries, dir)
	}
	// The mount still works, and the export does too.
	d.mustArchiveCLI(t, "images", "export", file, "big:v1")
}

// TestImportInterrupted: SIGINT during an import cancels it before it
// writes an image: one line, exit status 1, no image (QA 3, finding 2).
func TestImportInterrupted(t *testing.T) {
	t.Parallel()
	d := startNsfs(t)
	img := newImage(98, "amd64", 16<<20, 16<<20, 16<<20, 16<<20)
	archive := writeTemp(t, "big.tar", ociLayoutTar(t, []map[string]any{archiveIndexEntry(img.manifest, annotationImageName, "big:v1")}, img.blobs()...))
	r := interruptCLI(t, d, func() bool { return len(ingestFiles(t, d.root)) > 0 }, "-n", "imp", "images", "import", archive)
	if r.code != 1 || r.stderr != "nsfs: import "+archive+": interrupted\n" {
		t.Errorf("want exit 1 and \"nsfs: import %s: interrupted\", got %s", archive, r)
	}
	assertOutput(t, "images after the interrupted import", mustRun(t, d.mnt, "find", "ns/imp/images", "-type", "f"), "")
}

// TestExportDaemonKilled: the daemon dies (kill -9) in the middle of an
// export: the export says the daemon is gone and how to recover, in one
// line, exit status 1, and leaves no file (QA 3, finding 4).
func TestExportDaemonKilled(t *testing.T) {
	t.Parallel()
	d := startNsfs(t)
	// Killed only once the mount is done (see TestUmountDeadMount).
	d.waitForLog(t, "nsfs: serving ")
	img := newImage(99, "amd64", 16<<20, 16<<20, 16<<20, 16<<20)
	d.putImage(t, "default", "big:v1", img)
	dir := t.TempDir()
	file := filepath.Join(dir, "big.tar")
	cmd := childCommand(nsfsBin, "--mount", d.mnt, "images", "export", file, "big:v1")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	exited := startBackground(t, cmd)
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(2 * time.Millisecond) {
		tmps, _ := filepath.Glob(filepath.Join(dir, ".big.tar.tmp-*"))
		if len(tmps) == 1 {
			if fi, err := os.Stat(tmps[0]); err == nil && fi.Size() >= 1<<20 {
				break
			}
		}
		select {
		case <-exited:
			t.Fatalf("the export ended before the daemon could be killed: exit %d, stderr %q", cmd.ProcessState.ExitCode(), &stderr)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("the export is not under way after 30 s")
		}
	}
	d.kill9(t)
	select {
	case <-exited:
	case <-time.After(15 * time.Second):
		t.Fatal("the export still runs 15 s after its daemon died")
	}
	prefix := fmt.Sprintf("nsfs: the nsfs daemon serving %s is gone (", d.mnt)
	suffix := fmt.Sprintf("): run `nsfs mount --root %s %s` again to recover\n", d.root, d.mnt)
	got := stderr.String()
	if code := cmd.ProcessState.ExitCode(); code != 1 || !strings.HasPrefix(got, prefix) || !strings.HasSuffix(got, suffix) || strings.Count(got, "\n") != 1 {
		t.Errorf("export whose daemon died: exit %d, stderr %q; want 1 and %q...%q", code, got, prefix, suffix)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("the export whose daemon died left %v in %s", entries, dir)
	}
}
