package integration

import (
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// `nsfs push` to a real registry: what arrives keeps its digest, and what
// the registry has is not sent (its access log shows every request).

// requestLines lists the requests (method and path) the registry's access
// log shows after position from (from mark), besides mark's own.
func (r *testRegistry) requestLines(t *testing.T, from int) []string {
	t.Helper()
	end := r.mark(t)
	var out []string
	for _, m := range requestLine.FindAllString(r.out.String()[from:end], -1) {
		if !strings.Contains(m, "nsfs-marker-") {
			out = append(out, strings.Trim(m, `"`))
		}
	}
	return out
}

// blobUploadLine is a request that sends blob bytes (or starts to).
var blobUploadLine = regexp.MustCompile(`^(POST|PATCH|PUT) /v2/[^ ]+/blobs/uploads/`)

// TestPush pulls an image, pushes it to another repository (every blob
// sent, the digest kept), pushes it again (the registry has every blob:
// only the manifest goes), and pulls the pushed image into a new
// namespace (no blob bytes: the store has them all).
func TestPush(t *testing.T) {
	reg := startRegistry(t)
	d := startNsfs(t)
	app := imageWithLayers(1411, "amd64", nil, 200<<10, 100<<10)
	pushImage(t, reg.addr+"/src/app", "v1", app, nil)
	src := reg.addr + "/src/app:v1"
	mustPullCLI(t, d, nil, "pull", "--plain-http", src)

	// To a repository that has nothing: every blob is sent.
	dst := reg.addr + "/dst/app:v1"
	from := reg.mark(t)
	out := mustPullCLI(t, d, nil, "push", "--plain-http", src, dst)
	for _, b := range app.blobs() {
		if !strings.Contains(out, b.digest()+": done") {
			t.Errorf("push output does not say %s is done:\n%s", b.digest(), out)
		}
	}
	uploads := 0
	for _, line := range reg.requestLines(t, from) {
		if blobUploadLine.MatchString(line) {
			uploads++
		}
	}
	if uploads == 0 {
		t.Errorf("push to an empty repository sent no blob")
	}
	assertRegistryManifest(t, reg, "dst/app:v1", string(app.manifest.data))

	// Again, as another tag: the registry has every blob, so only the
	// manifest is sent (HEADs, then one PUT of the manifest).
	from = reg.mark(t)
	out = mustPullCLI(t, d, nil, "images", "push", "--plain-http", src, reg.addr+"/dst/app:v2")
	var puts []string
	for _, line := range reg.requestLines(t, from) {
		if blobUploadLine.MatchString(line) {
			t.Errorf("second push sent a blob: %s", line)
		}
		if strings.HasPrefix(line, "PUT ") {
			puts = append(puts, line)
		}
	}
	if len(puts) != 1 || !strings.Contains(puts[0], "/dst/app/manifests/v2") {
		t.Errorf("second push: want one PUT of the manifest, got %q", puts)
	}
	assertPullOutput(t, out, []string{doneLine("manifest", app.manifest)}, int64(len(app.manifest.data)))
	assertRegistryManifest(t, reg, "dst/app:v2", string(app.manifest.data))

	// Round trip: the pushed image pulled into a new namespace keeps its
	// digest and moves no blob bytes.
	from = reg.mark(t)
	mustPullCLI(t, d, []string{"NSFS_NAMESPACE=back"}, "pull", "--plain-http", dst)
	reg.assertBlobGETs(t, "pull of the pushed image into a new namespace", from)
	assertNamespaceHolds(t, d, "back", dst, app.manifest, app.blobs()...)

	// Errors name the image.
	failPullCLI(t, d, nil, `no image "nothing:here" in namespace "default"`, "push", "--plain-http", "nothing:here", dst)
}

// TestPushIndexPartial: an index pulled for one platform pushes that
// platform and names the one it lacks.
func TestPushIndexPartial(t *testing.T) {
	reg := startRegistry(t)
	d := startNsfs(t)
	multi := newMultiImage(imageWithLayers(1421, "amd64", nil, 10<<10), imageWithLayers(1422, "arm64", nil, 10<<10))
	pushMulti(t, reg.addr+"/src/multi", "v1", multi, nil)
	src := reg.addr + "/src/multi:v1"
	mustPullCLI(t, d, nil, "pull", "--plain-http", "--platform", "linux/amd64", src)
	r := runPullCLI(t, d, nil, "push", "--plain-http", src, reg.addr+"/dst/multi:v1")
	if !strings.Contains(r.stderr, multi.images[1].manifest.digest()) || !strings.Contains(r.stderr, "linux/arm64") {
		t.Errorf("push of a partial index: stderr does not name the lacking linux/arm64 manifest: %s", r)
	}
	// Debian's registry insists on every child of an index: the push
	// fails, saying why, after the platform it has went.
	if r.code != 1 || !strings.Contains(r.stderr, "--all-platforms") {
		t.Errorf("push of a partial index to a registry that wants every child: want exit 1 and the remedy, got %s", r)
	}
	if got := runSkopeo(t, "inspect", "--raw", "--tls-verify=false", "docker://"+reg.addr+"/dst/multi@"+multi.images[0].manifest.digest()); got.stdout != string(multi.images[0].manifest.data) {
		t.Errorf("the platform the namespace holds is not in the registry: %s", got)
	}
	// Once the namespace holds every platform, the index goes, digest kept.
	mustPullCLI(t, d, nil, "pull", "--plain-http", "--all-platforms", src)
	mustPullCLI(t, d, nil, "push", "--plain-http", src, reg.addr+"/dst/multi:v1")
	assertRegistryManifest(t, reg, "dst/multi:v1", string(multi.index.data))
}

// TestPushCredentials: push reads its credentials from the Docker config,
// as pull does.
func TestPushCredentials(t *testing.T) {
	reg := startRegistry(t, withPassword())
	d := startNsfs(t)
	img := newImage(1451, "amd64", 4<<10)
	d.putImage(t, "default", "local:v1", img)
	dst := reg.addr + "/private/app:v1"

	failPullCLI(t, d, nil, reg.addr+" requires a login, and "+filepath.Join(emptyDockerConfig(t), "config.json")+" has no credentials for it", "push", "--plain-http", "local:v1", dst)
	wrong := dockerConfig(t, reg.addr, registryUser, "not-the-password")
	failPullCLI(t, d, []string{"DOCKER_CONFIG=" + wrong}, reg.addr+" refused the credentials from "+filepath.Join(wrong, "config.json")+" (wrong username or password)", "push", "--plain-http", "local:v1", dst)
	right := dockerConfig(t, reg.addr, registryUser, registryPassword)
	mustPullCLI(t, d, []string{"DOCKER_CONFIG=" + right}, "push", "--plain-http", "local:v1", dst)
	back := mustPullCLI(t, d, []string{"DOCKER_CONFIG=" + right, "NSFS_NAMESPACE=back"}, "pull", "--plain-http", dst)
	if !strings.Contains(back, existsLine("manifest", img.manifest)) {
		t.Errorf("pull of the pushed image into a new namespace moved bytes: %s", back)
	}
}
