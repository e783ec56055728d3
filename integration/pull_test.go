package integration

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"oras.land/oras-go/v2/registry/remote"
	"oras.land/oras-go/v2/registry/remote/auth"
)

// `nsfs pull` against a real registry (registry_test.go): what lands in the
// namespace, what the registry's access log shows was fetched, and what
// the command prints.

// runPullCLI runs `nsfs --mount MNT ARGS...` with extra environment
// (NSFS_NAMESPACE=foo, DOCKER_CONFIG=...).
func runPullCLI(t *testing.T, d *daemon, env []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), toolTimeout)
	defer cancel()
	cmd := command(ctx, nsfsBin, append([]string{"--mount", d.mnt}, args...)...)
	cmd.Env = append(append(os.Environ(), "LC_ALL=C", "DOCKER_CONFIG="+emptyDockerConfig(t)), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := runChild(t, cmd)
	r := result{cmdline: "nsfs " + shortArgs(args), stdout: stdout.String(), stderr: stderr.String(), code: cmd.ProcessState.ExitCode()}
	if ctx.Err() != nil {
		t.Errorf("%s: still running after %v; killed", r.cmdline, toolTimeout)
	} else if _, ok := err.(*exec.ExitError); err != nil && !ok {
		t.Errorf("%s: %v", r.cmdline, err)
	}
	return r
}

// mustPullCLI runs the CLI, which must succeed without an error line.
func mustPullCLI(t *testing.T, d *daemon, env []string, args ...string) string {
	t.Helper()
	r := runPullCLI(t, d, env, args...)
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("want success without error output, got %s", r)
	}
	return r.stdout
}

// failPullCLI runs the CLI, which must exit 1 with exactly one line on
// stderr, containing want.
func failPullCLI(t *testing.T, d *daemon, env []string, want string, args ...string) result {
	t.Helper()
	r := runPullCLI(t, d, env, args...)
	if r.code != 1 || strings.Count(r.stderr, "\n") != 1 || !strings.HasPrefix(r.stderr, "nsfs: ") || !strings.Contains(r.stderr, want) {
		t.Errorf("want exit 1 and one line `nsfs: ...%s...` on stderr, got %s", want, r)
	}
	t.Logf("%s: %s", r.cmdline, strings.TrimSpace(r.stderr))
	return r
}

// emptyDockerConfig is a DOCKER_CONFIG directory without credentials, so
// that the tests never read the user's ~/.docker.
func emptyDockerConfig(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(os.TempDir(), "nsfs-test-empty-docker-config")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// dockerConfig writes a Docker config.json with user:password for host and
// returns its directory, for DOCKER_CONFIG.
func dockerConfig(t *testing.T, host, user, password string) string {
	t.Helper()
	dir := t.TempDir()
	auth := base64.StdEncoding.EncodeToString([]byte(user + ":" + password))
	data := fmt.Sprintf(`{"auths": {%q: {"auth": %q}}}`, host, auth)
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

// progressBytes is how the CLI prints a byte count ("12.3 MiB", "0.0 B").
func progressBytes(n int64) string {
	units := []string{"B", "KiB", "MiB", "GiB"}
	f, i := float64(n), 0
	for f >= 1024 && i < len(units)-1 {
		f /= 1024
		i++
	}
	return fmt.Sprintf("%02.1f %s", f, units[i])
}

var elapsedLine = regexp.MustCompile(`^elapsed: [0-9]+\.[0-9] s  total: ([0-9.]+ [KMG]?i?B) \([0-9.]+ [KMG]?i?B/s\)$`)

// assertPullOutput checks the plain (not a terminal) progress: one line
// per blob, `KIND-sha256:HEX: done  SIZE` or `KIND-sha256:HEX: exists`, in
// any order, then `elapsed: … total: TOTAL (…/s)`.
func assertPullOutput(t *testing.T, out string, wantLines []string, total int64) {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) == 0 || !strings.HasSuffix(out, "\n") {
		t.Errorf("pull output %q: want lines ending in a newline", out)
		return
	}
	last := lines[len(lines)-1]
	m := elapsedLine.FindStringSubmatch(last)
	if m == nil {
		t.Errorf("last line of the pull output %q is not `elapsed: … total: … (…/s)`", last)
	} else if m[1] != progressBytes(total) {
		t.Errorf("pull output says total: %s, want %s (%d bytes)", m[1], progressBytes(total), total)
	}
	got := sortStrings(lines[:len(lines)-1])
	want := sortStrings(wantLines)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("pull output lines:\n got: %q\nwant: %q", got, want)
	}
}

func doneLine(kind string, b blob) string {
	return fmt.Sprintf("%s-%s: done  %s", kind, b.digest(), progressBytes(int64(len(b.data))))
}

func existsLine(kind string, b blob) string { return fmt.Sprintf("%s-%s: exists", kind, b.digest()) }

// imageDoneLines are the lines of a pull that fetched all of img.
func imageDoneLines(img testImage) []string {
	out := []string{doneLine("manifest", img.manifest), doneLine("config", img.config)}
	for _, l := range img.layers {
		out = append(out, doneLine("layer", l))
	}
	return out
}

func blobsSize(bs ...blob) int64 {
	var n int64
	for _, b := range bs {
		n += int64(len(b.data))
	}
	return n
}

// assertNamespaceHolds checks `ls blobs/sha256` of ns and the bytes of
// every blob and of image ref, whose file must hold target.
func assertNamespaceHolds(t *testing.T, d *daemon, ns, ref string, target blob, blobs ...blob) {
	t.Helper()
	var hexes []string
	seen := map[string]bool{}
	for _, b := range blobs {
		if !seen[b.hex()] {
			seen[b.hex()] = true
			hexes = append(hexes, b.hex())
		}
	}
	assertOutput(t, "ls ns/"+ns+"/blobs/sha256", mustRun(t, d.mnt, "ls", filepath.Join("ns", ns, "blobs", "sha256")), lines(sortStrings(hexes)...))
	for _, b := range blobs {
		got, err := os.ReadFile(d.path(blobPath(ns, b.hex())))
		if err != nil || !bytes.Equal(got, b.data) {
			t.Errorf("blob %s in %s: %d bytes, err %v; want its %d bytes", b.digest(), ns, len(got), err, len(b.data))
		}
	}
	got, err := os.ReadFile(d.path(imagePath(ns, ref)))
	if err != nil || !bytes.Equal(got, target.data) {
		t.Errorf("image %s in %s: %q, err %v; want the bytes of %s", ref, ns, got, err, target.digest())
	}
	assertOutput(t, "sha256sum of the image file", mustRun(t, d.mnt, "sha256sum", imagePath(ns, ref)), target.hex()+"  "+imagePath(ns, ref)+"\n")
}

// The seed's scenario (issue 3, point 5): pull into default; foo has no
// images; pull the same ref into foo — no blob GET, total 0.0 B; rm it
// from foo; foo can be deleted, default cannot. Then an image sharing
// layers fetches only its own.
func TestPullSeedScenario(t *testing.T) {
	reg := startRegistry(t)
	d := startNsfs(t)
	app := imageWithLayers(201, "amd64", nil, 300<<10, 200<<10, 100<<10)
	pushImage(t, reg.addr+"/test/app", "v1", app, nil)
	ref := reg.addr + "/test/app:v1"

	from := reg.mark(t)
	out := mustPullCLI(t, d, nil, "pull", "--plain-http", ref)
	assertPullOutput(t, out, imageDoneLines(app), blobsSize(app.blobs()...))
	reg.assertBlobGETs(t, "first pull into default", from, append([]blob{app.config}, app.layers...)...)
	assertNamespaceHolds(t, d, "default", ref, app.manifest, app.blobs()...)
	assertOutput(t, "nsfs images ls -q", mustPullCLI(t, d, nil, "images", "ls", "-q"), ref+"\n")

	foo := []string{"NSFS_NAMESPACE=foo"}
	failPullCLI(t, d, foo, `namespace "foo": not found`, "images", "ls", "-q") // the pull creates it

	from = reg.mark(t)
	out = mustPullCLI(t, d, foo, "pull", "--plain-http", ref)
	assertPullOutput(t, out, []string{existsLine("manifest", app.manifest)}, 0)
	if !strings.Contains(out, "total: 0.0 B (") {
		t.Errorf("second pull into foo: output %q does not report total: 0.0 B", out)
	}
	reg.assertBlobGETs(t, "the same pull into foo", from)
	assertNamespaceHolds(t, d, "foo", ref, app.manifest, app.blobs()...)
	assertOutput(t, "NSFS_NAMESPACE=foo nsfs images ls -q", mustPullCLI(t, d, foo, "images", "ls", "-q"), ref+"\n")

	mustRun(t, d.mnt, "rm", imagePath("foo", ref))
	mustPullCLI(t, d, nil, "namespaces", "rm", "foo")
	assertOutput(t, "ls ns", mustRun(t, d.mnt, "ls", "ns"), "default\n")
	r := runPullCLI(t, d, nil, "namespaces", "rm", "default")
	if r.code != 1 || r.stderr != "nsfs: unable to delete default: namespace \"default\" must be empty, but it still has images, blobs\n" {
		t.Errorf("nsfs namespaces rm default: want exit 1 and ctr's message, got %s", r)
	}

	// An image on the same base layers: only its config and new layer move.
	app2 := imageWithLayers(202, "amd64", app.layers[:2], 64<<10)
	pushImage(t, reg.addr+"/test/app2", "v1", app2, nil)
	ref2 := reg.addr + "/test/app2:v1"
	from = reg.mark(t)
	out = mustPullCLI(t, d, nil, "pull", "--plain-http", ref2)
	assertPullOutput(t, out, []string{
		doneLine("manifest", app2.manifest), doneLine("config", app2.config),
		existsLine("layer", app2.layers[0]), existsLine("layer", app2.layers[1]), doneLine("layer", app2.layers[2]),
	}, blobsSize(app2.manifest, app2.config, app2.layers[2]))
	reg.assertBlobGETs(t, "an image sharing two layers", from, app2.config, app2.layers[2])
	assertNamespaceHolds(t, d, "default", ref2, app2.manifest, append(app.blobs(), app2.blobs()...)...)

	// --quiet prints nothing; a pull of what is there moves nothing.
	from = reg.mark(t)
	assertOutput(t, "nsfs pull --quiet", mustPullCLI(t, d, nil, "pull", "--quiet", "--plain-http", ref2), "")
	reg.assertBlobGETs(t, "pull --quiet of an image already there", from)
}

// From an index, the image's target is the index and only the selected
// platforms' blobs are fetched.
func TestPullPlatforms(t *testing.T) {
	reg := startRegistry(t)
	d := startNsfs(t)
	amd := imageWithLayers(301, "amd64", nil, 100<<10, 60<<10)
	arm := imageWithLayers(302, "arm64", nil, 110<<10, 70<<10)
	multi := newMultiImage(amd, arm)
	pushMulti(t, reg.addr+"/test/multi", "v1", multi, nil)
	ref := reg.addr + "/test/multi:v1"

	from := reg.mark(t)
	out := mustPullCLI(t, d, nil, "pull", "--plain-http", "--platform", "linux/arm64", ref)
	assertPullOutput(t, out, append(imageDoneLines(arm), doneLine("index", multi.index)), blobsSize(append(arm.blobs(), multi.index)...))
	reg.assertBlobGETs(t, "pull --platform linux/arm64", from, append([]blob{arm.config}, arm.layers...)...)
	assertNamespaceHolds(t, d, "default", ref, multi.index, append(arm.blobs(), multi.index)...)

	// The host's platform by default; the index (which another namespace
	// holds) is not fetched again, nor is anything of arm64.
	host, other := amd, arm
	if runtime.GOARCH == "arm64" {
		host, other = arm, amd
	}
	if runtime.GOARCH == "amd64" || runtime.GOARCH == "arm64" {
		from = reg.mark(t)
		env := []string{"NSFS_NAMESPACE=host"}
		out = mustPullCLI(t, d, env, "pull", "--plain-http", ref)
		if host.manifest.digest() == amd.manifest.digest() {
			assertPullOutput(t, out, append(imageDoneLines(amd), existsLine("index", multi.index)), blobsSize(amd.blobs()...))
		}
		reg.assertBlobGETs(t, "pull with the host's platform", from, append([]blob{host.config}, host.layers...)...)
		// Writing the index claims every blob below it that the store
		// holds (metadata's rule for present index children): default's
		// other platform too, though nothing of it was fetched.
		assertNamespaceHolds(t, d, "host", ref, multi.index, append(append(host.blobs(), other.blobs()...), multi.index)...)
	}

	// A platform the index does not have: one line, nothing written.
	before := d.state(t)
	failPullCLI(t, d, []string{"NSFS_NAMESPACE=s390x"}, "has no manifest for platform linux/s390x (it has linux/amd64, linux/arm64)", "pull", "--plain-http", "--platform", "linux/s390x", ref)
	mustRun(t, d.mnt, "rmdir", "ns/s390x") // the namespace a writing command creates first
	d.assertUnchanged(t, "pull of a platform the index does not have", before)

	// --all-platforms, in a store of its own: every blob once.
	d2 := startNsfs(t)
	from = reg.mark(t)
	out = mustPullCLI(t, d2, nil, "pull", "--plain-http", "--all-platforms", ref)
	assertPullOutput(t, out, append(append(imageDoneLines(amd), imageDoneLines(arm)...), doneLine("index", multi.index)), blobsSize(multi.blobs()...))
	reg.assertBlobGETs(t, "pull --all-platforms", from, amd.config, amd.layers[0], amd.layers[1], arm.config, arm.layers[0], arm.layers[1])
	assertNamespaceHolds(t, d2, "default", ref, multi.index, multi.blobs()...)
}

// Credentials come from the Docker config: the right password works; a
// wrong or missing one is one clear line and exit 1, nothing written.
func TestRegistryCredentials(t *testing.T) {
	reg := startRegistry(t, withPassword())
	d := startNsfs(t)
	img := imageWithLayers(401, "amd64", nil, 80<<10, 40<<10)
	pushImage(t, reg.addr+"/private/app", "v1", img, func(r *remote.Repository) {
		r.Client = &auth.Client{Credential: auth.StaticCredential(reg.addr, auth.Credential{Username: registryUser, Password: registryPassword})}
	})
	ref := reg.addr + "/private/app:v1"

	before := d.state(t)
	wrong := dockerConfig(t, reg.addr, registryUser, "not-the-password")
	failPullCLI(t, d, []string{"DOCKER_CONFIG=" + wrong}, reg.addr+" refused the credentials from "+filepath.Join(wrong, "config.json")+" (wrong username or password)", "pull", "--plain-http", ref)
	failPullCLI(t, d, nil, reg.addr+" requires a login, and "+filepath.Join(emptyDockerConfig(t), "config.json")+" has no credentials for it", "pull", "--plain-http", ref)
	d.assertUnchanged(t, "pulls with wrong or no credentials", before)

	right := dockerConfig(t, reg.addr, registryUser, registryPassword)
	out := mustPullCLI(t, d, []string{"DOCKER_CONFIG=" + right}, "pull", "--plain-http", ref)
	assertPullOutput(t, out, imageDoneLines(img), blobsSize(img.blobs()...))
	assertNamespaceHolds(t, d, "default", ref, img.manifest, img.blobs()...)
}

// An unknown ref and an unreachable registry: one line, exit 1, at once,
// nothing written.
func TestPullRegistryErrors(t *testing.T) {
	reg := startRegistry(t)
	d := startNsfs(t)
	before := d.state(t)

	// Into a namespace that does not exist: it is not created for nothing.
	failPullCLI(t, d, []string{"NSFS_NAMESPACE=new"}, `nsfs: failed to resolve reference "`+reg.addr+`/test/nope:v1": not found`, "pull", "--plain-http", reg.addr+"/test/nope:v1")

	closed := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	start := time.Now()
	failPullCLI(t, d, nil, `nsfs: failed to resolve reference "`+closed+`/test/app:v1": cannot reach `+closed+`: connection refused`, "pull", "--plain-http", closed+"/test/app:v1")
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("a pull from a closed port took %v, want a quick failure", took)
	}

	failPullCLI(t, d, nil, reg.addr+" speaks HTTP, not HTTPS: use --plain-http", "pull", reg.addr+"/test/app:v1")

	// An invalid namespace is refused before the registry is asked.
	from := reg.mark(t)
	failPullCLI(t, d, []string{"NSFS_NAMESPACE=../etc"}, `nsfs: namespace "../etc": invalid namespace name`, "pull", "--plain-http", reg.addr+"/test/app:v1")
	if got := reg.requestsSince(t, from); got != 0 {
		t.Errorf("a pull into an invalid namespace made %d requests to the registry, want none", got)
	}
	d.assertUnchanged(t, "failed pulls", before)
}

// interruptedImage is an image with a big layer between small ones.
func interruptedImage(seed int64) testImage {
	return imageWithLayers(seed, "amd64", nil, 64<<10, 8<<20, 32<<10)
}

// waitListed polls until `ls blobs/sha256` of ns lists every blob of want:
// listed means committed (a blob being written answers stat already).
func waitListed(t *testing.T, d *daemon, ns string, want ...blob) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		entries, err := os.ReadDir(d.path(blobPath(ns, "")))
		if err != nil {
			t.Fatal(err)
		}
		listed := map[string]bool{}
		for _, e := range entries {
			listed[e.Name()] = true
		}
		missing := 0
		for _, b := range want {
			if !listed[b.hex()] {
				missing++
			}
		}
		if missing == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d blobs never listed in ns/%s/blobs/sha256", missing, len(want), ns)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// assertPartialPull: after an interrupted pull, only complete blobs are
// visible, no image, and no ingest is left in the store.
func assertPartialPull(t *testing.T, d *daemon, ref string, complete ...blob) {
	t.Helper()
	var hexes []string
	for _, b := range complete {
		hexes = append(hexes, b.hex())
	}
	sort.Strings(hexes)
	assertOutput(t, "ls blobs/sha256 after an interrupted pull", mustRun(t, d.mnt, "ls", blobPath("default", "")), lines(hexes...))
	if _, err := os.Stat(d.path(imagePath("default", ref))); !os.IsNotExist(err) {
		t.Errorf("image %s after an interrupted pull: stat says %v, want ENOENT", ref, err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(ingestFiles(t, d.root)) > 0 {
		if time.Now().After(deadline) {
			t.Errorf("ingests left in the store after an interrupted pull: %v", ingestFiles(t, d.root))
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// SIGINT in the middle of a blob: exit non-zero, no partial blob, no image;
// the next pull fetches only what is missing (issue 3, point 7).
func TestPullInterruptedBySIGINT(t *testing.T) {
	reg := startRegistry(t)
	d := startNsfs(t)
	img := interruptedImage(501)
	pushImage(t, reg.addr+"/test/big", "v1", img, nil)
	proxy := startCutProxy(t, reg, 1<<20, true)
	proxy.cut(&img.layers[1])
	ref := proxy.addr + "/test/big:v1"

	pull := startBgPull(t, d, "pull", "--plain-http", ref)
	pull.waitHeld(t, "the pull", proxy.reached)
	waitListed(t, d, "default", img.config, img.layers[0], img.layers[2])
	pull.interrupt(t, "the pull")
	if code, stderr := pull.cmd.ProcessState.ExitCode(), pull.stderr.String(); code != 1 || !strings.Contains(stderr, "interrupted") || strings.Count(stderr, "\n") != 1 {
		t.Errorf("pull after SIGINT: exit %d, stderr %q; want 1 and one line saying it was interrupted", code, stderr)
	}
	assertPartialPull(t, d, ref, img.config, img.layers[0], img.layers[2])

	proxy.cut(nil)
	from := reg.mark(t)
	out := mustPullCLI(t, d, nil, "pull", "--plain-http", ref)
	assertPullOutput(t, out, []string{
		doneLine("manifest", img.manifest), existsLine("config", img.config),
		existsLine("layer", img.layers[0]), doneLine("layer", img.layers[1]), existsLine("layer", img.layers[2]),
	}, blobsSize(img.manifest, img.layers[1]))
	reg.assertBlobGETs(t, "the pull after SIGINT", from, img.layers[1])
	assertNamespaceHolds(t, d, "default", ref, img.manifest, img.blobs()...)
}

// The registry's connection breaks mid-blob: one line, exit 1, no partial
// blob; the next pull fetches only what is missing.
func TestPullRegistryDiesMidBlob(t *testing.T) {
	reg := startRegistry(t)
	d := startNsfs(t)
	img := interruptedImage(601)
	pushImage(t, reg.addr+"/test/big", "v1", img, nil)
	proxy := startCutProxy(t, reg, 1<<20, false)
	proxy.cut(&img.layers[1])
	ref := proxy.addr + "/test/big:v1"

	failPullCLI(t, d, nil, "pull \""+ref+"\"", "pull", "--plain-http", ref)
	// The other blobs may or may not have finished before the error
	// stopped the pull; none is partial, and the big one is not there.
	var complete []blob
	for _, b := range []blob{img.config, img.layers[0], img.layers[2]} {
		if _, err := os.Stat(d.path(blobPath("default", b.hex()))); err == nil {
			complete = append(complete, b)
		}
	}
	assertPartialPull(t, d, ref, complete...)

	proxy.cut(nil)
	from := reg.mark(t)
	mustPullCLI(t, d, nil, "pull", "--plain-http", ref)
	missing := []blob{img.layers[1]}
	for _, b := range []blob{img.config, img.layers[0], img.layers[2]} {
		found := false
		for _, c := range complete {
			found = found || c.digest() == b.digest()
		}
		if !found {
			missing = append(missing, b)
		}
	}
	reg.assertBlobGETs(t, "the pull after the broken connection", from, missing...)
	assertNamespaceHolds(t, d, "default", ref, img.manifest, img.blobs()...)
}

// openPTY opens a pseudo-terminal of rows x cols: the master to read what
// the child drew, the slave to give it as its stdout.
func openPTY(t *testing.T, rows, cols uint16) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.IoctlSetWinsize(int(s.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: rows, Col: cols}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close(); s.Close() })
	return m, s
}

// On a terminal, pull draws ctr's lines: the ref resolved, then one line
// per blob with its state, a bar and bytes/total; the last frame shows
// every blob done.
func TestPullProgressOnTerminal(t *testing.T) {
	reg := startRegistry(t)
	d := startNsfs(t)
	img := imageWithLayers(701, "amd64", nil, 256<<10, 3<<20)
	pushImage(t, reg.addr+"/test/tty", "v1", img, nil)
	ref := reg.addr + "/test/tty:v1"

	master, slave := openPTY(t, 40, 160)
	ctx, cancel := context.WithTimeout(context.Background(), toolTimeout)
	defer cancel()
	cmd := command(ctx, nsfsBin, "--mount", d.mnt, "pull", "--plain-http", ref)
	cmd.Env = append(os.Environ(), "DOCKER_CONFIG="+emptyDockerConfig(t))
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = slave, &stderr
	var screen bytes.Buffer
	read := make(chan struct{})
	go func() {
		_, _ = screen.ReadFrom(master) // EIO once the last slave is closed
		close(read)
	}()
	if err := runChild(t, cmd); err != nil {
		t.Fatalf("nsfs pull on a terminal: %v\nstderr: %s", err, &stderr)
	}
	slave.Close()
	select {
	case <-read:
	case <-time.After(10 * time.Second):
		t.Fatal("the terminal's output never ended")
	}
	out := strings.ReplaceAll(screen.String(), "\r", "")
	// The last frame: after the last cursor-up-and-clear.
	if i := strings.LastIndex(out, "\x1b[J"); i >= 0 {
		out = out[i+len("\x1b[J"):]
	}
	var want []*regexp.Regexp
	want = append(want, regexp.MustCompile(`^`+regexp.QuoteMeta(ref)+`: +resolved +\|\++\| *$`))
	short := func(kind string, b blob) *regexp.Regexp {
		size := regexp.QuoteMeta(progressBytes(int64(len(b.data))))
		return regexp.MustCompile(`^` + kind + `-sha256:` + b.hex()[:12] + `: +done +\|\++\| +` + size + ` / ` + size + `$`)
	}
	want = append(want, short("manifest", img.manifest), short("config", img.config), short("layer", img.layers[0]), short("layer", img.layers[1]))
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != len(want)+1 {
		t.Fatalf("last frame on the terminal: want %d lines, got %q", len(want)+1, lines)
	}
	for _, w := range want {
		found := false
		for _, l := range lines {
			found = found || w.MatchString(l)
		}
		if !found {
			t.Errorf("last frame on the terminal has no line matching %s:\n%s", w, out)
		}
	}
	if m := elapsedLine.FindStringSubmatch(lines[len(lines)-1]); m == nil || m[1] != progressBytes(blobsSize(img.blobs()...)) {
		t.Errorf("last line on the terminal %q: want elapsed: … total: %s (…/s)", lines[len(lines)-1], progressBytes(blobsSize(img.blobs()...)))
	}
}

// Under --content-sharing isolated a namespace sees only what it holds: a
// second pull into another namespace fetches every blob again (and the
// store keeps one copy of each).
func TestPullIsolatedFetchesAgain(t *testing.T) {
	reg := startRegistry(t)
	d := startNsfs(t, isolated())
	img := imageWithLayers(801, "amd64", nil, 128<<10, 64<<10)
	pushImage(t, reg.addr+"/test/iso", "v1", img, nil)
	ref := reg.addr + "/test/iso:v1"

	mustPullCLI(t, d, nil, "pull", "--plain-http", ref)
	from := reg.mark(t)
	out := mustPullCLI(t, d, []string{"NSFS_NAMESPACE=foo"}, "pull", "--plain-http", ref)
	assertPullOutput(t, out, imageDoneLines(img), blobsSize(img.blobs()...))
	reg.assertBlobGETs(t, "the same pull into foo under isolated", from, append([]blob{img.config}, img.layers...)...)
	assertNamespaceHolds(t, d, "foo", ref, img.manifest, img.blobs()...)
	if n := len(rootBlobFiles(t, d.root)); n != len(img.blobs()) {
		t.Errorf("the store has %d blob files after two pulls of one image, want %d", n, len(img.blobs()))
	}
}

// gateProxy is a reverse proxy on 127.0.0.1 in front of a registry that
// holds back the GET of one blob once it has passed `after` bytes, until
// the test opens the gate; then the rest of the blob passes. Other
// requests pass through.
type gateProxy struct {
	addr     string
	reached  chan struct{} // closed once the held blob has sent `after` bytes
	reachedO sync.Once
	gate     chan struct{} // closed by open
	gateO    sync.Once
}

func startGateProxy(t *testing.T, reg *testRegistry, b blob, after int64) *gateProxy {
	t.Helper()
	g := &gateProxy{reached: make(chan struct{}), gate: make(chan struct{})}
	g.addr = startBlobProxy(t, reg, b.digest, after, g.hold)
	t.Cleanup(g.open)
	return g
}

// open lets the held blob's remaining bytes through.
func (g *gateProxy) open() { g.gateO.Do(func() { close(g.gate) }) }

// hold is what the held blob's reads past `after` do: wait until open.
func (g *gateProxy) hold() error {
	g.reachedO.Do(func() { close(g.reached) })
	<-g.gate
	return nil
}

// bgPull is an `nsfs pull` running in the background.
type bgPull struct {
	cmd            *exec.Cmd
	stdout, stderr *syncBuffer
	exited         <-chan struct{}
}

func startBgPull(t *testing.T, d *daemon, args ...string) *bgPull {
	t.Helper()
	p := &bgPull{stdout: &syncBuffer{}, stderr: &syncBuffer{}}
	p.cmd = childCommand(nsfsBin, append([]string{"--mount", d.mnt}, args...)...)
	p.cmd.Env = append(os.Environ(), "LC_ALL=C", "DOCKER_CONFIG="+emptyDockerConfig(t))
	p.cmd.Stdout, p.cmd.Stderr = p.stdout, p.stderr
	p.exited = startBackground(t, p.cmd)
	return p
}

func (p *bgPull) String() string {
	code := "still running"
	select {
	case <-p.exited:
		code = fmt.Sprintf("exit %d", p.cmd.ProcessState.ExitCode())
	default:
	}
	return fmt.Sprintf("nsfs pull (%s)\nstdout:\n%s\nstderr:\n%s", code, p.stdout, p.stderr)
}

// waitHeld waits until reached is closed: the proxy has passed on the
// first MiB of the big layer and holds back the rest (it stalls, or cuts
// the connection). A pull that ends first, or 30 s without, fails the test.
func (p *bgPull) waitHeld(t *testing.T, what string, reached <-chan struct{}) {
	t.Helper()
	select {
	case <-reached:
	case <-p.exited:
		t.Fatalf("%s ended before the big layer was held: %s", what, p)
	case <-time.After(30 * time.Second):
		t.Fatalf("the big layer's GET never reached 1 MiB: %s", p)
	}
}

// interrupt sends SIGINT, as Ctrl-C does, and waits (10 s at most) for the
// pull to exit.
func (p *bgPull) interrupt(t *testing.T, what string) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s still running 10 s after SIGINT: %s", what, p)
	}
}

// mustSucceed waits for the pull to exit, which it must do with status 0
// and nothing on stderr.
func (p *bgPull) mustSucceed(t *testing.T, what string) {
	t.Helper()
	select {
	case <-p.exited:
	case <-time.After(toolTimeout):
		t.Fatalf("%s: still running after %v", what, toolTimeout)
	}
	if p.cmd.ProcessState.ExitCode() != 0 || p.stderr.String() != "" {
		t.Errorf("%s: want exit 0 without error output, got %s", what, p)
	}
}

// waitOutput polls until the pull's stdout has line, failing if the pull
// exits first.
func (p *bgPull) waitOutput(t *testing.T, what, line string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(p.stdout.String(), line+"\n") {
		select {
		case <-p.exited:
			t.Fatalf("%s exited before it printed %q: %s", what, line, p)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never printed %q: %s", what, line, p)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// assertConcurrentPullOutput checks the plain progress of one of two
// pulls of img at once: the lines want, in any order, plus those of the
// manifest, which both fetch (it counts in both totals) and either may
// store (done) while the other waits for it (exists, maybe after a
// waiting line).
func assertConcurrentPullOutput(t *testing.T, out string, img testImage, want []string, total int64) {
	t.Helper()
	got := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	manifestLines := []string{doneLine("manifest", img.manifest)}
	if slices.Contains(got, existsLine("manifest", img.manifest)) {
		manifestLines = []string{existsLine("manifest", img.manifest)}
		if slices.Contains(got, waitingLine("manifest", img.manifest)) {
			manifestLines = append(manifestLines, waitingLine("manifest", img.manifest))
		}
	}
	assertPullOutput(t, out, append(want, manifestLines...), total+blobsSize(img.manifest))
}

// waitNoIngests polls until the store has no ingest left.
func waitNoIngests(t *testing.T, d *daemon) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for len(ingestFiles(t, d.root)) > 0 {
		if time.Now().After(deadline) {
			t.Errorf("ingests left in the store: %v", ingestFiles(t, d.root))
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func waitingLine(kind string, b blob) string {
	return fmt.Sprintf("%s-%s: waiting (another process is writing it)", kind, b.digest())
}

// Two pulls of one image into one namespace at once (QA3 #1): the second
// finds the big layer being written by the first, waits for it instead of
// taking it for stored, and both succeed; each blob is fetched once. The
// first is held in the middle of the big layer until the second says it
// waits, so the overlap does not depend on timing. When the first gives
// up instead (SIGINT), the second fetches and writes the layer itself.
func TestPullConcurrentSameNamespace(t *testing.T) {
	reg := startRegistry(t)
	img := interruptedImage(901)
	pushImage(t, reg.addr+"/test/big", "v1", img, nil)
	big := img.layers[1]
	for _, tc := range []struct {
		name   string
		opts   []daemonOption
		giveUp bool // SIGINT the first pull while the second waits
	}{{name: "shared"}, {name: "isolated", opts: []daemonOption{isolated()}}, {name: "first gives up", giveUp: true}} {
		t.Run(tc.name, func(t *testing.T) {
			d := startNsfs(t, tc.opts...)
			proxy := startGateProxy(t, reg, big, 1<<20)
			ref := proxy.addr + "/test/big:v1"
			from := reg.mark(t)

			first := startBgPull(t, d, "pull", "--plain-http", ref)
			first.waitHeld(t, "the first pull", proxy.reached)
			// The first pull's other blobs are stored; the big one is
			// being written (its name answers stat in the namespace).
			waitListed(t, d, "default", img.config, img.layers[0], img.layers[2])
			if _, err := os.Stat(d.path(blobPath("default", big.hex()))); err != nil {
				t.Fatalf("the big layer being written: stat says %v, want it there", err)
			}

			second := startBgPull(t, d, "pull", "--plain-http", ref)
			second.waitOutput(t, "the second pull", waitingLine("layer", big))
			select {
			case <-first.exited:
				t.Fatalf("the first pull ended while the big layer was held: %s", first)
			default:
			}
			smalls := []blob{img.config, img.layers[0], img.layers[2]}
			if tc.giveUp {
				first.interrupt(t, "the first pull")
				if first.cmd.ProcessState.ExitCode() != 1 || !strings.Contains(first.stderr.String(), "interrupted") {
					t.Errorf("the first pull after SIGINT: want exit 1, interrupted; got %s", first)
				}
				proxy.open() // for the second pull's GET of the big layer
				second.mustSucceed(t, "the second pull, after the first gave up")
				assertPullOutput(t, second.stdout.String(), []string{
					existsLine("config", img.config), existsLine("layer", img.layers[0]), existsLine("layer", img.layers[2]),
					waitingLine("layer", big), doneLine("layer", big), doneLine("manifest", img.manifest),
				}, blobsSize(big, img.manifest))
				// The big layer twice: the first pull's part, then the second's whole.
				got := reg.blobGETs(t, from)
				want := map[string]int{img.config.digest(): 1, img.layers[0].digest(): 1, big.digest(): 2, img.layers[2].digest(): 1}
				if fmt.Sprint(got) != fmt.Sprint(want) {
					t.Errorf("blob GETs in the registry's access log:\n got: %v\nwant: %v", got, want)
				}
				assertNamespaceHolds(t, d, "default", ref, img.manifest, img.blobs()...)
				waitNoIngests(t, d)
				return
			}
			proxy.open()

			first.mustSucceed(t, "the first pull")
			second.mustSucceed(t, "the second pull")
			assertConcurrentPullOutput(t, first.stdout.String(), img,
				[]string{doneLine("config", img.config), doneLine("layer", img.layers[0]), doneLine("layer", big), doneLine("layer", img.layers[2])},
				blobsSize(append(smalls, big)...))
			assertConcurrentPullOutput(t, second.stdout.String(), img,
				[]string{existsLine("config", img.config), existsLine("layer", img.layers[0]), waitingLine("layer", big), existsLine("layer", big), existsLine("layer", img.layers[2])},
				0)
			// The second pull asked the registry for no blob at all.
			reg.assertBlobGETs(t, "two pulls of one image at once", from, append(smalls, big)...)
			assertNamespaceHolds(t, d, "default", ref, img.manifest, img.blobs()...)
			waitNoIngests(t, d)
		})
	}
}

// lastFrame is the last frame a pull drew on a terminal: what follows the
// last clear-to-end-of-screen, without carriage returns.
func lastFrame(screen string) string {
	out := strings.ReplaceAll(screen, "\r", "")
	if i := strings.LastIndex(out, "\x1b[J"); i >= 0 {
		out = out[i+len("\x1b[J"):]
	}
	return out
}

// frameLine is the line of blob b (of kind) in a frame, "" if none.
func frameLine(frame, kind string, b blob) string {
	for _, l := range strings.Split(frame, "\n") {
		if strings.HasPrefix(l, kind+"-sha256:"+b.hex()[:12]+":") {
			return l
		}
	}
	return ""
}

// On a terminal, a manifest whose bytes are in shows done while its layers
// download (as ctr); after Ctrl-C the lines of what was not stored say
// canceled, and those stored done (QA3 #13).
func TestPullProgressOnTerminalInterrupted(t *testing.T) {
	reg := startRegistry(t)
	d := startNsfs(t)
	img := interruptedImage(702)
	pushImage(t, reg.addr+"/test/ttyint", "v1", img, nil)
	proxy := startCutProxy(t, reg, 1<<20, true)
	proxy.cut(&img.layers[1])
	ref := proxy.addr + "/test/ttyint:v1"

	master, slave := openPTY(t, 40, 160)
	screen := &syncBuffer{}
	read := make(chan struct{})
	go func() {
		_, _ = io.Copy(screen, master) // EIO once the last slave is closed
		close(read)
	}()
	// A pull on the terminal: its stdout, as a user sees it, is the screen.
	pull := &bgPull{cmd: childCommand(nsfsBin, "--mount", d.mnt, "pull", "--plain-http", ref), stdout: screen, stderr: &syncBuffer{}}
	pull.cmd.Env = append(os.Environ(), "DOCKER_CONFIG="+emptyDockerConfig(t))
	pull.cmd.Stdout, pull.cmd.Stderr = slave, pull.stderr
	pull.exited = startBackground(t, pull.cmd)
	pull.waitHeld(t, "the pull", proxy.reached)
	waitListed(t, d, "default", img.config, img.layers[0], img.layers[2])

	// While the big layer stalls: the manifest done, the layer downloading.
	manifestDone := regexp.MustCompile(`: +done +\|`)
	deadline := time.Now().Add(10 * time.Second)
	for {
		frame := lastFrame(screen.String())
		m, l := frameLine(frame, "manifest", img.manifest), frameLine(frame, "layer", img.layers[1])
		if manifestDone.MatchString(m) && strings.Contains(l, " downloading ") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("while the big layer downloads, want the manifest done and the layer downloading; last frame:\n%s", frame)
		}
		time.Sleep(20 * time.Millisecond)
	}

	pull.interrupt(t, "the pull")
	slave.Close()
	select {
	case <-read:
	case <-time.After(10 * time.Second):
		t.Fatal("the terminal's output never ended")
	}
	if code, stderr := pull.cmd.ProcessState.ExitCode(), pull.stderr.String(); code != 1 || !strings.Contains(stderr, "interrupted") {
		t.Errorf("pull after SIGINT: exit %d, stderr %q; want 1, interrupted", code, stderr)
	}
	frame := lastFrame(screen.String())
	for _, w := range []struct {
		kind, state string
		b           blob
	}{
		{"manifest", "canceled", img.manifest}, {"layer", "canceled", img.layers[1]},
		{"config", "done", img.config}, {"layer", "done", img.layers[0]}, {"layer", "done", img.layers[2]},
	} {
		if l := frameLine(frame, w.kind, w.b); !regexp.MustCompile(`: +` + w.state + ` +\|`).MatchString(l) {
			t.Errorf("last frame after SIGINT: %s %s line %q, want state %s; frame:\n%s", w.kind, w.b.hex()[:12], l, w.state, frame)
		}
	}
}

// The daemon killed mid-pull (QA3 #4): the pull's next write fails with
// ECONNABORTED or ENOTCONN, and it says in one line that the daemon
// serving the mount is gone, not "software caused connection abort".
func TestPullDaemonKilledMidBlob(t *testing.T) {
	reg := startRegistry(t)
	d := startNsfs(t)
	img := interruptedImage(902)
	pushImage(t, reg.addr+"/test/big", "v1", img, nil)
	proxy := startGateProxy(t, reg, img.layers[1], 1<<20)
	ref := proxy.addr + "/test/big:v1"

	pull := startBgPull(t, d, "pull", "--plain-http", ref)
	pull.waitHeld(t, "the pull", proxy.reached)
	d.kill9(t)
	proxy.open() // the pull writes the rest into the dead mount
	select {
	case <-pull.exited:
	case <-time.After(toolTimeout):
		t.Fatalf("the pull still runs after the daemon was killed: %s", pull)
	}
	want := `nsfs: pull "` + ref + `": the nsfs daemon serving ` + d.mnt + ` is gone (`
	if code, errs := pull.cmd.ProcessState.ExitCode(), pull.stderr.String(); code != 1 || strings.Count(errs, "\n") != 1 || !strings.HasPrefix(errs, want) {
		t.Errorf("pull into a mount whose daemon was killed: want exit 1 and one line starting %q, got %s", want, pull)
	}
	t.Logf("%s", pull.stderr)
}
