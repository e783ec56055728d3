package integration

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"go/build"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Every namespace is an OCI image layout (oci-layout, index.json,
// blobs/sha256): skopeo, oras, crane and umoci read it in place, with
// the digests kept.

// layoutTool is the path of a container tool the layout tests drive:
// skopeo and umoci from Debian, oras and crane from `go install` (in
// GOPATH/bin when that is not on PATH). CI installs them all (.ci/run):
// missing there is a failure, elsewhere a skip.
func layoutTool(t *testing.T, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	if p := filepath.Join(build.Default.GOPATH, "bin", name); fileExists(p) {
		return p
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s is not installed (.ci/run installs it)", name)
	}
	t.Skipf("%s is not installed (.ci/run installs it)", name)
	return ""
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// runTool runs a layout tool with HOME and DOCKER_CONFIG of the test's
// own, so that no credentials or caches of the machine take part.
func runTool(t *testing.T, name string, args ...string) result {
	t.Helper()
	home := t.TempDir()
	env := "HOME=" + home
	return run(t, "", "env", append([]string{env, "DOCKER_CONFIG=" + emptyDockerConfig(t), "XDG_RUNTIME_DIR=" + home, layoutTool(t, name)}, args...)...)
}

// mustTool runs a layout tool that must exit 0; it returns stdout.
func mustTool(t *testing.T, name string, args ...string) string {
	t.Helper()
	r := runTool(t, name, args...)
	if r.code != 0 {
		t.Fatalf("want success, got %s", r)
	}
	return r.stdout
}

// tarGzLayer is a real gzip-compressed tar layer holding files (name →
// content), and the digest of its uncompressed tar (the config's diff_id).
func tarGzLayer(t *testing.T, files map[string]string) (layer blob, diffID string) {
	t.Helper()
	var tarBuf bytes.Buffer
	tw := tar.NewWriter(&tarBuf)
	for _, name := range sortedKeys(files) {
		body := files[name]
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg, Uname: "root", Gname: "root"}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	if _, err := zw.Write(tarBuf.Bytes()); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return blob{mediaType: mediaTypeOCILayer, data: gz.Bytes()}, "sha256:" + sha256Hex(tarBuf.Bytes())
}

// runnableImage is an OCI image a container tool can unpack: one real
// layer, a config naming its diff_id.
func runnableImage(t *testing.T, files map[string]string) testImage {
	t.Helper()
	layer, diffID := tarGzLayer(t, files)
	config := blob{mediaType: mediaTypeOCIConfig, data: mustJSON(map[string]any{
		"architecture": "amd64",
		"os":           "linux",
		"config":       map[string]any{},
		"rootfs":       map[string]any{"type": "layers", "diff_ids": []string{diffID}},
	})}
	m := manifest{SchemaVersion: 2, MediaType: mediaTypeOCIManifest, Config: &descriptor{MediaType: config.mediaType, Digest: config.digest(), Size: int64(len(config.data))}, Layers: []descriptor{layer.descriptor()}}
	return testImage{config: config, layers: []blob{layer}, manifest: blob{mediaType: mediaTypeOCIManifest, data: mustJSON(m)}}
}

// layoutIndex is index.json as the tests read it.
type layoutIndex struct {
	SchemaVersion int    `json:"schemaVersion"`
	MediaType     string `json:"mediaType"`
	Manifests     []struct {
		MediaType   string            `json:"mediaType"`
		Digest      string            `json:"digest"`
		Size        int64             `json:"size"`
		Annotations map[string]string `json:"annotations"`
	} `json:"manifests"`
}

func readLayoutIndex(t *testing.T, d *daemon, ns string) layoutIndex {
	t.Helper()
	data, err := os.ReadFile(d.path("ns", ns, "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	var idx layoutIndex
	if err := json.Unmarshal(data, &idx); err != nil {
		t.Fatalf("index.json of %s is no JSON: %v\n%s", ns, err, data)
	}
	return idx
}

// layoutRefs is what index.json names: ref → target digest.
func layoutRefs(t *testing.T, d *daemon, ns string) map[string]string {
	t.Helper()
	refs := map[string]string{}
	for _, m := range readLayoutIndex(t, d, ns).Manifests {
		refs[m.Annotations["org.opencontainers.image.ref.name"]] = m.Digest
	}
	return refs
}

// TestLayoutFiles: oci-layout and index.json exist in every namespace;
// index.json follows images/ (one entry per ref, containerd's
// annotations); oci-layout accepts its own bytes and refuses others.
func TestLayoutFiles(t *testing.T) {
	d := startNsfs(t)
	m := d.mnt
	mustRun(t, m, "mkdir", "ns/foo")
	assertOutput(t, "cat oci-layout", mustRun(t, m, "cat", "ns/foo/oci-layout"), `{"imageLayoutVersion":"1.0.0"}`)
	idx := readLayoutIndex(t, d, "foo")
	if idx.SchemaVersion != 2 || idx.MediaType != mediaTypeOCIIndex || len(idx.Manifests) != 0 {
		t.Errorf("index.json of an empty namespace: %+v", idx)
	}

	img, other := newImage(1401, "amd64", 100), newImage(1402, "arm64", 120)
	mustRun(t, m, "ls", "-l", "ns/foo") // the kernel hears of index.json's size
	d.putImage(t, "foo", "docker.io/library/app:v1", img)
	d.putImage(t, "foo", "other", other)
	// A stat right after sees the new size: the kernel keeps none.
	if st, err := os.Stat(d.path("ns", "foo", "index.json")); err != nil {
		t.Error(err)
	} else if st.Size() <= 89 {
		t.Errorf("stat index.json after two images were added: size %d, the empty index's", st.Size())
	}
	idx = readLayoutIndex(t, d, "foo")
	if len(idx.Manifests) != 2 {
		t.Fatalf("index.json: want 2 images, got %+v", idx)
	}
	for i, want := range []struct {
		ref string
		b   blob
	}{{"docker.io/library/app:v1", img.manifest}, {"other", other.manifest}} {
		got := idx.Manifests[i]
		if got.Digest != want.b.digest() || got.Size != int64(len(want.b.data)) || got.MediaType != mediaTypeOCIManifest {
			t.Errorf("index.json entry %d: %+v, want %+v", i, got, want.b.descriptor())
		}
		if got.Annotations["org.opencontainers.image.ref.name"] != want.ref || got.Annotations["io.containerd.image.name"] != want.ref {
			t.Errorf("index.json entry %d annotations %v, want the ref %q in both", i, got.Annotations, want.ref)
		}
	}
	// stat agrees with what a read gives.
	st, err := os.Stat(d.path("ns", "foo", "index.json"))
	data, _ := os.ReadFile(d.path("ns", "foo", "index.json"))
	if err != nil || st.Size() != int64(len(data)) {
		t.Errorf("stat index.json: %v, size %d; read %d bytes", err, st.Size(), len(data))
	}
	mustRun(t, m, "rm", imagePath("foo", "other"))
	if refs := layoutRefs(t, d, "foo"); len(refs) != 1 || refs["docker.io/library/app:v1"] != img.manifest.digest() {
		t.Errorf("index.json after rm other: %v", refs)
	}

	before := d.state(t)
	mustSh(t, m, `printf '{"imageLayoutVersion":"1.0.0"}' > ns/foo/oci-layout`)
	err = os.WriteFile(d.path("ns", "foo", "oci-layout"), []byte(`{"imageLayoutVersion":"2.0.0"}`), 0o644)
	assertErrno(t, "write another version into oci-layout", err, syscall.EINVAL)
	d.assertUnchanged(t, "oci-layout writes", before)
	assertOutput(t, "cat oci-layout", mustRun(t, m, "cat", "ns/foo/oci-layout"), `{"imageLayoutVersion":"1.0.0"}`)

	// tar -x of the layout files over themselves: tar removes a file it
	// cannot create with O_EXCL and tries again (an rm that left the file
	// there made it loop for ever); the refs stay as they were.
	refsBefore := layoutRefs(t, d, "foo")
	archive := filepath.Join(t.TempDir(), "layout.tar")
	mustRun(t, m, "tar", "cf", archive, "-C", "ns/foo", "oci-layout", "index.json")
	mustRun(t, m, "tar", "xf", archive, "-C", "ns/foo")
	if refs := layoutRefs(t, d, "foo"); fmt.Sprint(refs) != fmt.Sprint(refsBefore) {
		t.Errorf("refs after tar -x of index.json over itself: %v, want %v", refs, refsBefore)
	}
	// rm of index.json changes no ref; the name is absent until written.
	mustRun(t, m, "rm", "ns/foo/index.json")
	assertOutput(t, "ls ns/foo after rm index.json", mustRun(t, m, "ls", "ns/foo"), lines("blobs", "images", "oci-layout"))
	assertOutput(t, "ls images after rm index.json", mustRun(t, m, "ls", "ns/foo/images"), lines("docker.io"))
	mustFail(t, m, "No such file or directory", "cat", "ns/foo/index.json")

	// rm -rf of the namespace still exits 0 and removes it.
	mustRun(t, m, "rm", "-rf", "ns/foo")
	if fileExists(d.path("ns", "foo")) {
		t.Errorf("ns/foo still exists after rm -rf")
	}
}

// TestLayoutReadByTools reads a namespace in place with skopeo, oras,
// crane and umoci, and copies its image to a registry with each of the
// first three: the registry then serves the very manifest bytes.
func TestLayoutReadByTools(t *testing.T) {
	reg := startRegistry(t)
	d := startNsfs(t)
	m := d.mnt
	mustRun(t, m, "mkdir", "ns/foo")
	img := runnableImage(t, map[string]string{"etc/hello": "hello from nsfs\n"})
	d.putImage(t, "foo", "app-v1", img)
	layout := d.path("ns", "foo")
	want := string(img.manifest.data)

	// skopeo: inspect and copy out to the registry.
	if r := runSkopeo(t, "inspect", "--raw", "oci:"+layout+":app-v1"); r.code != 0 || r.stdout != want {
		t.Errorf("skopeo inspect --raw: %s", r)
	}
	if r := runSkopeo(t, "copy", "--preserve-digests", "--dest-tls-verify=false", "oci:"+layout+":app-v1", "docker://"+reg.addr+"/skopeo/app:v1"); r.code != 0 {
		t.Fatalf("skopeo copy to the registry: %s", r)
	}
	assertRegistryManifest(t, reg, "skopeo/app:v1", want)

	// oras: fetch the manifest, copy to the registry.
	assertOutput(t, "oras manifest fetch --oci-layout", mustTool(t, "oras", "manifest", "fetch", "--oci-layout", layout+":app-v1"), want)
	mustTool(t, "oras", "cp", "--from-oci-layout", layout+":app-v1", "--to-plain-http", reg.addr+"/oras/app:v1")
	assertRegistryManifest(t, reg, "oras/app:v1", want)

	// crane: push reads a layout holding one image.
	mustTool(t, "crane", "push", "--insecure", layout, reg.addr+"/crane/app:v1")
	assertRegistryManifest(t, reg, "crane/app:v1", want)

	// umoci: unpack from the layout (read only).
	bundle := filepath.Join(t.TempDir(), "bundle")
	mustTool(t, "umoci", "unpack", "--rootless", "--image", layout+":app-v1", bundle)
	if got, err := os.ReadFile(filepath.Join(bundle, "rootfs", "etc", "hello")); err != nil || string(got) != "hello from nsfs\n" {
		t.Errorf("umoci unpack: etc/hello is %q (%v)", got, err)
	}
	// Nothing a reader did changed the namespace, or left anything in it.
	assertOutput(t, "ls ns/foo after the readers", mustRun(t, m, "ls", "-a", "ns/foo"), lines(".", "..", "blobs", "images", "index.json", "oci-layout"))
	if refs := layoutRefs(t, d, "foo"); len(refs) != 1 || refs["app-v1"] != img.manifest.digest() {
		t.Errorf("index.json after the readers: %v", refs)
	}
}

// assertRegistryManifest checks that the registry serves want as repo:tag.
func assertRegistryManifest(t *testing.T, reg *testRegistry, repoTag, want string) {
	t.Helper()
	r := runSkopeo(t, "inspect", "--raw", "--tls-verify=false", "docker://"+reg.addr+"/"+repoTag)
	if r.code != 0 || r.stdout != want {
		t.Errorf("registry %s: want the manifest %s, got %s", repoTag, sha256Hex([]byte(want)), r)
	}
}

// TestLayoutWrittenByTools: skopeo, oras and crane write an image from a
// registry into namespaces in place, each with the ref it writes; the
// bytes are verified as any ingest, and under the shared policy the
// second and third tools add no blob file to the store.
func TestLayoutWrittenByTools(t *testing.T) {
	reg := startRegistry(t)
	d := startNsfs(t)
	m := d.mnt
	img := runnableImage(t, map[string]string{"etc/hello": "written in place\n"})
	pushImage(t, reg.addr+"/src/app", "v1", img, nil)
	src := reg.addr + "/src/app:v1"
	for _, ns := range []string{"sk", "or", "cr"} {
		mustRun(t, m, "mkdir", "ns/"+ns)
	}

	// skopeo: a temporary file in the root per blob, index.json rewritten.
	if r := runSkopeo(t, "copy", "--preserve-digests", "--src-tls-verify=false", "docker://"+src, "oci:"+d.path("ns", "sk")+":app:v1"); r.code != 0 {
		t.Fatalf("skopeo copy into the namespace: %s", r)
	}
	assertNamespaceHolds(t, d, "sk", "app:v1", img.manifest, img.blobs()...)
	files := rootBlobFiles(t, d.root)

	// oras: ingest/ scratch directory, renamed into blobs/sha256.
	r := runTool(t, "oras", "cp", "--from-plain-http", src, "--to-oci-layout", d.path("ns", "or")+":v1")
	if r.code != 0 {
		t.Fatalf("oras cp into the namespace: %s", r)
	}
	// The store has the whole graph: oras sends nothing and says so.
	if !strings.Contains(r.stdout, "Exists  "+img.manifest.hex()[:12]) {
		t.Errorf("oras cp of an image the store holds does not say it exists: %s", r)
	}
	assertNamespaceHolds(t, d, "or", "v1", img.manifest, img.blobs()...)

	// crane: blobs written by name, index.json by os.WriteFile; the ref
	// only with --annotate-ref.
	mustTool(t, "crane", "pull", "--insecure", "--format=oci", "--annotate-ref", src, d.path("ns", "cr"))
	assertNamespaceHolds(t, d, "cr", src, img.manifest, img.blobs()...)
	// Without --annotate-ref crane names nothing: the image is named by
	// its digest.
	mustTool(t, "crane", "pull", "--insecure", "--format=oci", src, d.path("ns", "crn"))
	assertNamespaceHolds(t, d, "crn", "@"+img.manifest.digest(), img.manifest, img.blobs()...)
	// skopeo into a namespace that sees the whole image already: it
	// writes every blob again (O_TRUNC), which the same bytes allow.
	mustRun(t, m, "mkdir", "ns/sk2")
	if r := runSkopeo(t, "copy", "--preserve-digests", "--src-tls-verify=false", "docker://"+src, "oci:"+d.path("ns", "sk2")+":app:v1"); r.code != 0 {
		t.Fatalf("skopeo copy into a second namespace: %s", r)
	}
	assertNamespaceHolds(t, d, "sk2", "app:v1", img.manifest, img.blobs()...)

	if after := rootBlobFiles(t, d.root); fmt.Sprint(sortedKeys(after)) != fmt.Sprint(sortedKeys(files)) {
		t.Errorf("blob files of the store after oras and crane wrote the same image:\n got: %v\nwant: %v", sortedKeys(after), sortedKeys(files))
	}
	// Nothing temporary is left, and each namespace is removable.
	for _, ns := range []string{"sk", "or", "cr", "crn", "sk2"} {
		assertOutput(t, "ls ns/"+ns, mustRun(t, m, "ls", "ns/"+ns), lines("blobs", "images", "index.json", "oci-layout"))
		mustRun(t, m, "rm", "-rf", "ns/"+ns)
	}
}

// TestLayoutWrittenIsolated: under the isolated policy every byte must be
// sent, so oras writes each blob through its ingest/ scratch directory
// and crane each by name; umoci unpacks what they wrote. Scratch
// directories and left-behind temporary files keep no namespace from
// being removed.
func TestLayoutWrittenIsolated(t *testing.T) {
	reg := startRegistry(t)
	d := startNsfs(t, isolated())
	m := d.mnt
	img := runnableImage(t, map[string]string{"etc/hello": "isolated\n"})
	pushImage(t, reg.addr+"/src/app", "v1", img, nil)
	src := reg.addr + "/src/app:v1"
	mustRun(t, m, "mkdir", "ns/or", "ns/cr")

	mustTool(t, "oras", "cp", "--from-plain-http", src, "--to-oci-layout", d.path("ns", "or")+":v1")
	assertNamespaceHolds(t, d, "or", "v1", img.manifest, img.blobs()...)
	// oras-go wrote through ingest/ and leaves the empty directory.
	assertOutput(t, "ls ns/or", mustRun(t, m, "ls", "ns/or"), lines("blobs", "images", "index.json", "ingest", "oci-layout"))
	assertOutput(t, "ls ns/or/ingest", mustRun(t, m, "ls", "-a", "ns/or/ingest"), lines(".", ".."))
	// A second tag: index.json is rewritten with both refs.
	mustTool(t, "oras", "cp", "--from-plain-http", src, "--to-oci-layout", d.path("ns", "or")+":v2")
	if refs := layoutRefs(t, d, "or"); len(refs) != 2 || refs["v1"] != img.manifest.digest() || refs["v2"] != img.manifest.digest() {
		t.Errorf("index.json after oras wrote v1 and v2: %v", refs)
	}
	mustTool(t, "crane", "pull", "--insecure", "--format=oci", "--annotate-ref", src, d.path("ns", "cr"))
	assertNamespaceHolds(t, d, "cr", src, img.manifest, img.blobs()...)

	bundle := filepath.Join(t.TempDir(), "bundle")
	mustTool(t, "umoci", "unpack", "--rootless", "--image", d.path("ns", "or")+":v2", bundle)
	if got, err := os.ReadFile(filepath.Join(bundle, "rootfs", "etc", "hello")); err != nil || string(got) != "isolated\n" {
		t.Errorf("umoci unpack of what oras wrote: etc/hello is %q (%v)", got, err)
	}

	// Left behind by a crashed tool: a temporary file in the root, one in
	// a scratch directory. Neither blocks rmdir.
	mustRun(t, m, "mkdir", "ns/left", "ns/left/ingest")
	mustSh(t, m, "echo partial > ns/left/oci-put-blob123 && echo partial > ns/left/ingest/abc_1")
	assertOutput(t, "ls ns/left", mustRun(t, m, "ls", "ns/left"), lines("blobs", "images", "index.json", "ingest", "oci-layout", "oci-put-blob123"))
	mustRun(t, m, "rmdir", "ns/left")
	if fileExists(d.path("ns", "left")) {
		t.Errorf("ns/left still exists after rmdir")
	}
	mustRun(t, m, "rm", "-rf", "ns/or", "ns/cr")
}

// TestLayoutIndexWrite: a write of index.json changes exactly the refs it
// changes and removes the refs it leaves out, in one transaction; a
// temporary file renamed onto it does the same; what it refuses changes
// nothing. Temporary files commit blobs only with the right bytes.
func TestLayoutIndexWrite(t *testing.T) {
	d := startNsfs(t)
	m := d.mnt
	mustRun(t, m, "mkdir", "ns/foo")
	one, two := newImage(1431, "amd64", 64), newImage(1432, "amd64", 80)
	d.putImage(t, "foo", "a", one)
	d.putImage(t, "foo", "b", two)
	d.putImage(t, "foo", "c", one)
	inoB := inodeOf(t, d.path(imagePath("foo", "b")))

	entry := func(ref string, b blob) map[string]any {
		return map[string]any{"mediaType": b.mediaType, "digest": b.digest(), "size": len(b.data),
			"annotations": map[string]string{"org.opencontainers.image.ref.name": ref}}
	}
	indexJSON := func(entries ...map[string]any) []byte {
		return mustJSON(map[string]any{"schemaVersion": 2, "mediaType": mediaTypeOCIIndex, "manifests": entries})
	}
	// The kernel remembers that d and lib/ are missing (for a second)...
	for _, missing := range []string{"d", "lib/e"} {
		_, err := os.Stat(d.path(imagePath("foo", missing)))
		assertErrno(t, "stat of "+missing+" before the write of index.json", err, syscall.ENOENT)
	}
	// a changes, b stays, c goes, d and lib/e come.
	if err := os.WriteFile(d.path("ns", "foo", "index.json"), indexJSON(entry("a", two.manifest), entry("b", two.manifest), entry("d", one.manifest), entry("lib/e", one.manifest)), 0o644); err != nil {
		t.Fatalf("write index.json: %v", err)
	}
	// ...and forgets it once the write returned.
	for _, added := range []string{"d", "lib/e"} {
		if _, err := os.Stat(d.path(imagePath("foo", added))); err != nil {
			t.Errorf("stat of %s right after the write of index.json that made it: %v", added, err)
		}
	}
	mustRun(t, m, "rm", "-r", imagePath("foo", "lib"))
	want := map[string]string{"a": two.manifest.digest(), "b": two.manifest.digest(), "d": one.manifest.digest()}
	if refs := layoutRefs(t, d, "foo"); fmt.Sprint(refs) != fmt.Sprint(want) {
		t.Errorf("refs after the write of index.json: %v, want %v", refs, want)
	}
	assertOutput(t, "ls images", mustRun(t, m, "ls", "ns/foo/images"), lines("a", "b", "d"))
	if got := inodeOf(t, d.path(imagePath("foo", "b"))); got != inoB {
		t.Errorf("images/b was replaced (inode %d, was %d): the write did not change it", got, inoB)
	}

	// Refusals change nothing.
	before := d.state(t)
	for _, bad := range []struct {
		what string
		data []byte
		want syscall.Errno
	}{
		{"junk", []byte("junk"), syscall.EINVAL},
		{"a manifest", one.manifest.data, syscall.EINVAL},
		{"a ref that is no path", indexJSON(entry("../x", one.manifest)), syscall.EINVAL},
	} {
		err := os.WriteFile(d.path("ns", "foo", "index.json"), bad.data, 0o644)
		assertErrno(t, "write index.json of "+bad.what, err, bad.want)
	}
	d.assertUnchanged(t, "refused writes of index.json", before)
	// A ref whose target the namespace cannot see is left out (a restore
	// may write index.json before the blobs): the write succeeds.
	if err := os.WriteFile(d.path("ns", "foo", "index.json"), indexJSON(entry("a", two.manifest), entry("b", two.manifest), entry("d", one.manifest), entry("x", newImage(1433, "amd64", 8).manifest)), 0o644); err != nil {
		t.Errorf("write index.json naming a target nobody has: %v", err)
	}
	d.assertUnchanged(t, "a write of index.json whose only change has no target", before)

	// A writer's rewrite is measured against what it read: an image made
	// by another process after this one read index.json survives this
	// one's write of what it read plus its own change.
	stale, err := os.ReadFile(d.path("ns", "foo", "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	d.putImage(t, "foo", "made-meanwhile", two) // by cp, another process
	var staleIdx map[string]any
	if err := json.Unmarshal(stale, &staleIdx); err != nil {
		t.Fatal(err)
	}
	staleIdx["manifests"] = append(staleIdx["manifests"].([]any), entry("mine", one.manifest))
	if err := os.WriteFile(d.path("ns", "foo", "index.json"), mustJSON(staleIdx), 0o644); err != nil {
		t.Fatalf("write index.json from a stale read: %v", err)
	}
	assertOutput(t, "ls images after a write from a stale read", mustRun(t, m, "ls", "ns/foo/images"), lines("a", "b", "d", "made-meanwhile", "mine"))

	// A temporary file renamed onto index.json (umoci's way).
	if err := os.WriteFile(d.path("ns", "foo", "index.json.tmp"), indexJSON(entry("z", two.manifest)), 0o600); err != nil {
		t.Fatal(err)
	}
	mustRun(t, m, "mv", "ns/foo/index.json.tmp", "ns/foo/index.json")
	assertOutput(t, "ls images after mv onto index.json", mustRun(t, m, "ls", "ns/foo/images"), lines("z"))
	assertOutput(t, "ls ns/foo", mustRun(t, m, "ls", "ns/foo"), lines("blobs", "images", "index.json", "oci-layout"))

	// A temporary file whose bytes are not the blob's: EBADMSG, it stays.
	layer := blob{mediaType: mediaTypeOCILayer, data: randomBytes(1434, 4096)}
	if err := os.WriteFile(d.path("ns", "foo", "oci-put-blob1"), []byte("other bytes"), 0o600); err != nil {
		t.Fatal(err)
	}
	err = os.Rename(d.path("ns", "foo", "oci-put-blob1"), d.path(blobPath("foo", layer.hex())))
	assertErrno(t, "rename of the wrong bytes to blobs/sha256/<hex>", err, syscall.EBADMSG)
	if !fileExists(d.path("ns", "foo", "oci-put-blob1")) || fileExists(d.path(blobPath("foo", layer.hex()))) {
		t.Errorf("after EBADMSG: the temporary file must stay and the blob must not exist")
	}
	mustRun(t, m, "rm", "ns/foo/oci-put-blob1")

	// Through a scratch directory, the right bytes commit the blob.
	mustRun(t, m, "mkdir", "ns/foo/ingest")
	if err := os.WriteFile(d.path("ns", "foo", "ingest", layer.hex()+"_42"), layer.data, 0o600); err != nil {
		t.Fatal(err)
	}
	mustRun(t, m, "mv", "ns/foo/ingest/"+layer.hex()+"_42", blobPath("foo", layer.hex()))
	if got, err := os.ReadFile(d.path(blobPath("foo", layer.hex()))); err != nil || !bytes.Equal(got, layer.data) {
		t.Errorf("blob committed from ingest/: %d bytes (%v)", len(got), err)
	}
	assertOutput(t, "ls ingest", mustRun(t, m, "ls", "ns/foo/ingest"), "")
	mustRun(t, m, "rmdir", "ns/foo/ingest")
}

func inodeOf(t *testing.T, p string) uint64 {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(p, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// TestLayoutRoundTrips: skopeo writes into nsfs, oras copies that out to a
// registry, and `nsfs pull` of it into another namespace fetches no blob;
// crane writes, skopeo reads. Every step keeps the digest.
func TestLayoutRoundTrips(t *testing.T) {
	reg := startRegistry(t)
	d := startNsfs(t)
	m := d.mnt
	img := runnableImage(t, map[string]string{"etc/trip": "round trip\n"})
	pushImage(t, reg.addr+"/src/app", "v1", img, nil)
	src := reg.addr + "/src/app:v1"
	mustRun(t, m, "mkdir", "ns/sk", "ns/cr")

	if r := runSkopeo(t, "copy", "--preserve-digests", "--src-tls-verify=false", "docker://"+src, "oci:"+d.path("ns", "sk")+":app-v1"); r.code != 0 {
		t.Fatalf("skopeo copy into nsfs: %s", r)
	}
	mustTool(t, "oras", "cp", "--from-oci-layout", d.path("ns", "sk")+":app-v1", "--to-plain-http", reg.addr+"/out/app:v1")
	assertRegistryManifest(t, reg, "out/app:v1", string(img.manifest.data))
	from := reg.mark(t)
	mustPullCLI(t, d, []string{"NSFS_NAMESPACE=back"}, "pull", "--plain-http", reg.addr+"/out/app:v1")
	reg.assertBlobGETs(t, "nsfs pull of what oras copied out of nsfs", from)
	assertNamespaceHolds(t, d, "back", reg.addr+"/out/app:v1", img.manifest, img.blobs()...)

	mustTool(t, "crane", "pull", "--insecure", "--format=oci", "--annotate-ref", src, d.path("ns", "cr"))
	if r := runSkopeo(t, "inspect", "--raw", "oci:"+d.path("ns", "cr")+":"+src); r.code != 0 || r.stdout != string(img.manifest.data) {
		t.Errorf("skopeo inspect of what crane wrote: %s", r)
	}
	if r := runSkopeo(t, "copy", "--preserve-digests", "--dest-tls-verify=false", "oci:"+d.path("ns", "cr")+":"+src, "docker://"+reg.addr+"/out/crane:v1"); r.code != 0 {
		t.Fatalf("skopeo copy of what crane wrote: %s", r)
	}
	assertRegistryManifest(t, reg, "out/crane:v1", string(img.manifest.data))
}

// TestLayoutTempLeftBehind: temporary files a crashed tool left in a
// namespace's root and in its scratch directory are collected by the
// daemon's gc after the grace period, names and bytes.
func TestLayoutTempLeftBehind(t *testing.T) {
	t.Parallel()
	d := startNsfs(t, withFlags("--gc-grace", gcEvery.String()))
	m := d.mnt
	mustRun(t, m, "mkdir", "ns/bar", "ns/bar/ingest")
	data := randomBytes(1441, 4096)
	mustRun(t, m, "cp", writeTemp(t, "b", data), "ns/bar/oci-put-blob7")
	mustRun(t, m, "cp", writeTemp(t, "b", data), "ns/bar/ingest/abc_7")
	deadline := time.Now().Add(10 * time.Second)
	for len(ingestFiles(t, d.root)) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("ROOT/ingest still holds %v", ingestFiles(t, d.root))
		}
		time.Sleep(gcEvery / 4)
	}
	assertOutput(t, "ls ns/bar once gc collected", mustRun(t, m, "ls", "ns/bar"), lines("blobs", "images", "index.json", "ingest", "oci-layout"))
	assertOutput(t, "ls -A ns/bar/ingest once gc collected", mustRun(t, m, "ls", "-A", "ns/bar/ingest"), "")
	mustRun(t, m, "rmdir", "ns/bar/ingest", "ns/bar")
}

// TestLayoutUmociWrites: umoci changes a namespace in place — repack of a
// changed bundle into a new ref, tag — through its .umoci-… scratch
// directory and a rename onto index.json, and leaves nothing behind.
func TestLayoutUmociWrites(t *testing.T) {
	d := startNsfs(t)
	m := d.mnt
	mustRun(t, m, "mkdir", "ns/foo")
	img := runnableImage(t, map[string]string{"etc/hello": "before\n"})
	d.putImage(t, "foo", "app-v1", img)
	layout := d.path("ns", "foo")

	bundle := filepath.Join(t.TempDir(), "bundle")
	mustTool(t, "umoci", "unpack", "--rootless", "--image", layout+":app-v1", bundle)
	if err := os.WriteFile(filepath.Join(bundle, "rootfs", "etc", "added"), []byte("after\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	mustTool(t, "umoci", "repack", "--image", layout+":app-v2", bundle)
	mustTool(t, "umoci", "tag", "--image", layout+":app-v2", "app-v3")
	assertOutput(t, "ls images", mustRun(t, m, "ls", "ns/foo/images"), lines("app-v1", "app-v2", "app-v3"))
	assertOutput(t, "ls -a ns/foo", mustRun(t, m, "ls", "-a", "ns/foo"), lines(".", "..", "blobs", "images", "index.json", "oci-layout"))
	if refs := layoutRefs(t, d, "foo"); refs["app-v1"] != img.manifest.digest() || refs["app-v2"] == img.manifest.digest() || refs["app-v3"] != refs["app-v2"] {
		t.Errorf("refs after repack and tag: %v", refs)
	}

	again := filepath.Join(t.TempDir(), "again")
	mustTool(t, "umoci", "unpack", "--rootless", "--image", layout+":app-v3", again)
	for name, want := range map[string]string{"hello": "before\n", "added": "after\n"} {
		if got, err := os.ReadFile(filepath.Join(again, "rootfs", "etc", name)); err != nil || string(got) != want {
			t.Errorf("etc/%s of the repacked image: %q (%v), want %q", name, got, err, want)
		}
	}
}
