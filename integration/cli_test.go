package integration

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"text/tabwriter"
	"time"
)

// The nsfs command's non-transfer commands (namespaces, images ls/rm/tag,
// content), driven as a user would: the built binary against a real
// mount, checking stdout, stderr and the exit status, and that what it
// refuses leaves the store as it was.

// cliEnvVars are cleared from the environment of every run, so that
// the test's own environment cannot choose a mount or a namespace.
var cliEnvVars = []string{"NSFS_MOUNT", "NSFS_NAMESPACE", "CONTAINERD_NAMESPACE"}

// runCLI runs `nsfs ARGS...` with the environment cleared of cliEnvVars
// plus env (KEY=VALUE).
func runCLI(t *testing.T, env []string, args ...string) result {
	t.Helper()
	return runCLIWith(t, env, nsfsBin, args...)
}

// runCLIWith runs name with args and an environment cleared of
// cliEnvVars plus env.
func runCLIWith(t *testing.T, env []string, name string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), toolTimeout)
	defer cancel()
	cmd := command(ctx, name, args...)
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if !slices.Contains(cliEnvVars, k) {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	cmd.Env = append(cmd.Env, "LC_ALL=C")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := runChild(t, cmd)
	r := result{
		cmdline: strings.TrimSpace(strings.Join(env, " ") + " " + filepath.Base(name) + " " + shortArgs(args)),
		stdout:  stdout.String(),
		stderr:  stderr.String(),
		code:    cmd.ProcessState.ExitCode(),
	}
	if ctx.Err() != nil {
		t.Errorf("%s: still running after %v; killed", r.cmdline, toolTimeout)
	}
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		t.Fatalf("%s: %v", r.cmdline, err)
	}
	return r
}

// cli runs `nsfs --mount MNT ARGS...`; it must succeed silently on
// stderr, and returns stdout.
func (d *daemon) cli(t *testing.T, args ...string) string {
	t.Helper()
	r := runCLI(t, nil, append([]string{"--mount", d.mnt}, args...)...)
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("want success without error output, got %s", r)
	}
	return r.stdout
}

// cliFails runs `nsfs --mount MNT ARGS...`, which must exit 1 with
// exactly the stderr want, and returns the result.
func (d *daemon) cliFails(t *testing.T, want string, args ...string) result {
	t.Helper()
	r := runCLI(t, nil, append([]string{"--mount", d.mnt}, args...)...)
	assertCLIFailure(t, r, want)
	return r
}

// assertCLIFailure: exit status 1 and exactly the error line(s) want.
func assertCLIFailure(t *testing.T, r result, want string) {
	t.Helper()
	if r.code != 1 {
		t.Errorf("want exit status 1, got %s", r)
	}
	if r.stderr != want {
		t.Errorf("stderr of %s:\n got: %q\nwant: %q", r.cmdline, r.stderr, want)
	}
}

// cliTable is what ctr's tabwriter (minwidth 1, tabwidth 8, padding 1,
// spaces) prints for rows; ctr ends every cell of namespaces and images
// ls with a tab, so their lines end in a space.
func cliTable(trailingTab bool, rows ...[]string) string {
	var b bytes.Buffer
	tw := tabwriter.NewWriter(&b, 1, 8, 1, ' ', 0)
	for _, row := range rows {
		line := strings.Join(row, "\t")
		if trailingTab {
			line += "\t"
		}
		fmt.Fprintln(tw, line)
	}
	tw.Flush()
	return b.String()
}

// cliKiB is a size between 1 KiB and 1 MiB as ctr prints it.
func cliKiB(t *testing.T, n int) string {
	t.Helper()
	if n < 1024 || n >= 1024*1024 {
		t.Fatalf("cliKiB(%d): the test wants a size between 1 KiB and 1 MiB", n)
	}
	return fmt.Sprintf("%.1f KiB", float64(n)/1024)
}

func TestCLINamespaces(t *testing.T) {
	t.Parallel()
	d := startNsfs(t)

	assertOutput(t, "namespaces ls of a fresh store", d.cli(t, "namespaces", "ls"),
		cliTable(true, []string{"NAME", "OWNER", "HELD", "ONLY", "QUOTA", "LABELS"}, []string{"default", "root", "0.0 B", "0.0 B", "-", ""}))

	// create prints nothing; a bare KEY is KEY=true.
	assertOutput(t, "namespaces create", d.cli(t, "namespaces", "create", "foo", "team=infra", "pinned", "note=a=b"), "")
	assertOutput(t, "getfattr of the new namespace",
		mustRun(t, d.mnt, "getfattr", "-d", "--absolute-names", "ns/foo"),
		"# file: ns/foo\nuser.note=\"a=b\"\nuser.pinned=\"true\"\nuser.team=\"infra\"\n\n")
	d.cli(t, "ns", "create", "bar")
	assertOutput(t, "namespaces ls", d.cli(t, "namespaces", "ls"), cliTable(true,
		[]string{"NAME", "OWNER", "HELD", "ONLY", "QUOTA", "LABELS"},
		[]string{"bar", "root", "0.0 B", "0.0 B", "-", ""},
		[]string{"default", "root", "0.0 B", "0.0 B", "-", ""},
		[]string{"foo", "root", "0.0 B", "0.0 B", "-", "note=a=b,pinned=true,team=infra"}))
	assertOutput(t, "namespaces ls -q", d.cli(t, "namespaces", "ls", "-q"), lines("bar", "default", "foo"))

	// label: set, bare KEY, KEY= removes, removing an absent label is fine.
	assertOutput(t, "namespaces label", d.cli(t, "namespaces", "label", "foo", "team=storage", "pinned=", "gone=", "fresh"), "")
	assertOutput(t, "getfattr after label",
		mustRun(t, d.mnt, "getfattr", "-d", "--absolute-names", "ns/foo"),
		"# file: ns/foo\nuser.fresh=\"true\"\nuser.note=\"a=b\"\nuser.team=\"storage\"\n\n")
	// Labels set by a shell user show in the table.
	mustRun(t, d.mnt, "setfattr", "-n", "user.by", "-v", "shell", "ns/bar")
	assertOutput(t, "namespaces ls after label", d.cli(t, "ns", "ls"), cliTable(true,
		[]string{"NAME", "OWNER", "HELD", "ONLY", "QUOTA", "LABELS"},
		[]string{"bar", "root", "0.0 B", "0.0 B", "-", "by=shell"},
		[]string{"default", "root", "0.0 B", "0.0 B", "-", ""},
		[]string{"foo", "root", "0.0 B", "0.0 B", "-", "fresh=true,note=a=b,team=storage"}))

	// Refusals: one line, exit 1, nothing changed.
	before := d.state(t)
	d.cliFails(t, "nsfs: namespace \"foo\": already exists\n", "namespaces", "create", "foo")
	d.cliFails(t, "nsfs: namespace \"nope\": not found\n", "namespaces", "label", "nope", "a=b")
	d.cliFails(t, "nsfs: namespace \"nope\": not found\n", "namespaces", "label", "nope", "a=")
	invalid := func(name string) string {
		return fmt.Sprintf("nsfs: namespace %q: invalid namespace name: it must match ^[A-Za-z0-9]+(?:[._-](?:[A-Za-z0-9]+))*$ and be at most 76 characters\n", name)
	}
	for _, bad := range []string{"bad!", "a..b", "../default", "a/b", strings.Repeat("a", 77)} {
		d.cliFails(t, invalid(bad), "namespaces", "create", bad)
		d.cliFails(t, invalid(bad), "-n", bad, "images", "ls")
	}
	// A label the filesystem would refuse is refused before the mkdir.
	d.cliFails(t, "nsfs: namespace \"big\": label \"k\": key and value length (4097 bytes) greater than maximum size (4096 bytes)\n",
		"namespaces", "create", "big", "k="+strings.Repeat("v", 4096))
	d.cliFails(t, "nsfs: label \"=v\": the key is empty\n", "namespaces", "label", "foo", "=v")
	d.cliFails(t, "nsfs: namespaces create: a namespace NAME is required (usage: nsfs namespaces create NAME [KEY=VALUE...])\n", "namespaces", "create")
	d.cliFails(t, "nsfs: namespaces rm: at least one namespace NAME is required (usage: nsfs namespaces rm NAME...)\n", "namespaces", "rm")
	d.assertUnchanged(t, "the refused namespace commands", before)

	// rm of a namespace with images and blobs: containerd's sentence.
	img := newImage(31, "amd64", 2000)
	d.putImage(t, "default", "app:v1", img)
	before = d.state(t)
	r := d.cliFails(t, "nsfs: unable to delete default: namespace \"default\" must be empty, but it still has images, blobs\n",
		"namespaces", "rm", "default")
	assertOutput(t, "stdout of the refused rm", r.stdout, "")
	d.assertUnchanged(t, "namespaces rm default", before)

	// Only blobs: the sentence names only blobs.
	loose := blob{data: []byte("a blob only bar holds")}
	d.putBlob(t, "bar", loose)
	d.cliFails(t, "nsfs: unable to delete bar: namespace \"bar\" must be empty, but it still has blobs\n", "namespaces", "rm", "bar")

	// Several names: the others go on, each removed name is printed,
	// each failure is one line, and the status is 1.
	d.cli(t, "namespaces", "create", "empty1")
	d.cli(t, "namespaces", "create", "empty2")
	r = runCLI(t, []string{"NSFS_MOUNT=" + d.mnt}, "namespaces", "rm", "empty1", "default", "nope", "empty2")
	assertCLIFailure(t, r, "nsfs: unable to delete default: namespace \"default\" must be empty, but it still has images, blobs\n"+
		"nsfs: unable to delete nope: namespace \"nope\": not found\n")
	assertOutput(t, "stdout of namespaces rm of several", r.stdout, lines("empty1", "empty2"))
	assertOutput(t, "ls ns after rm", mustRun(t, d.mnt, "ls", "ns"), lines("bar", "default", "foo"))

	// Once emptied, rm works and prints the name.
	mustRun(t, d.mnt, "rm", blobPath("bar", loose.hex()))
	assertOutput(t, "namespaces rm bar foo", d.cli(t, "namespaces", "rm", "bar", "foo"), lines("bar", "foo"))
	assertOutput(t, "namespaces ls -q at the end", d.cli(t, "namespaces", "ls", "-q"), lines("default"))
}

func TestCLIImages(t *testing.T) {
	t.Parallel()
	d := startNsfs(t)
	amd := newImage(41, "amd64", 3000, 5000)
	arm := newImage(42, "arm64", 4000)
	d.putImage(t, "default", "docker.io/library/app:v1", amd)
	// The index names the arm64 image, whose blobs the store never got:
	// the namespace holds only the index and the amd64 part.
	idx := newIndex(amd, arm)
	d.putManifest(t, "default", "multi:latest", idx.data)
	mustRun(t, d.mnt, "setfattr", "-n", "user.owner", "-v", "me", imagePath("default", "multi:latest"))
	mustRun(t, d.mnt, "setfattr", "-n", "user.app", "-v", "web", imagePath("default", "multi:latest"))

	amdSize := len(amd.manifest.data) + len(amd.config.data) + 3000 + 5000
	header := []string{"REF", "TYPE", "DIGEST", "SIZE", "PLATFORMS", "LABELS"}
	appRow := []string{"docker.io/library/app:v1", mediaTypeOCIManifest, amd.manifest.digest(), cliKiB(t, amdSize), "linux/amd64", "-"}
	multiRow := []string{"multi:latest", mediaTypeOCIIndex, idx.digest(), cliKiB(t, len(idx.data)+amdSize), "linux/amd64,linux/arm64", "app=web,owner=me"}
	assertOutput(t, "images ls", d.cli(t, "images", "ls"), cliTable(true, header, appRow, multiRow))
	assertOutput(t, "images ls -q", d.cli(t, "images", "ls", "-q"), lines("docker.io/library/app:v1", "multi:latest"))
	// Once another namespace has the arm64 image, the store has its blobs
	// and default can see them (stat succeeds), but it does not hold them:
	// its SIZE stays.
	mustRun(t, d.mnt, "mkdir", "ns/other")
	d.putImage(t, "other", "arm", arm)
	if _, err := os.Stat(d.path(blobPath("default", arm.layers[0].hex()))); err != nil {
		t.Fatalf("under shared content, default should see the blobs of other: %v", err)
	}
	assertOutput(t, "images ls when another namespace has the arm64 blobs", d.cli(t, "images", "ls"), cliTable(true, header, appRow, multiRow))
	mustRun(t, d.mnt, "rm", "-r", "ns/other")

	// Another namespace: missing (an error, TestCLIMissingNamespace),
	// then the same image costs it nothing and lists the same.
	for _, env := range [][]string{{"NSFS_NAMESPACE=foo"}, {"CONTAINERD_NAMESPACE=foo"}} {
		r := runCLI(t, append(env, "NSFS_MOUNT="+d.mnt), "images", "ls")
		assertCLIFailure(t, r, "nsfs: namespace \"foo\": not found\n")
	}
	if _, err := os.Stat(d.path("ns", "foo")); !os.IsNotExist(err) {
		t.Errorf("images ls created the namespace it listed: stat ns/foo: %v", err)
	}
	mustRun(t, d.mnt, "mkdir", "ns/foo")
	mustRun(t, d.mnt, "cp", imagePath("default", "docker.io/library/app:v1"), imagePath("foo", "app"))
	assertOutput(t, "images ls -n foo", d.cli(t, "-n", "foo", "images", "ls"),
		cliTable(true, header, []string{"app", mediaTypeOCIManifest, amd.manifest.digest(), cliKiB(t, amdSize), "linux/amd64", "-"}))

	// tag: a second ref to the same target, with a copy of the labels,
	// in sub-directories made for it.
	assertOutput(t, "images tag", d.cli(t, "images", "tag", "multi:latest", "registry.local/team/multi:v2"), lines("registry.local/team/multi:v2"))
	assertOutput(t, "labels of the new ref",
		mustRun(t, d.mnt, "getfattr", "-d", "--absolute-names", imagePath("default", "registry.local/team/multi:v2")),
		fmt.Sprintf("# file: %s\nuser.app=\"web\"\nuser.owner=\"me\"\n\n", imagePath("default", "registry.local/team/multi:v2")))
	v2Row := append([]string{"registry.local/team/multi:v2"}, multiRow[1:]...)
	assertOutput(t, "images ls after tag", d.cli(t, "images", "ls"), cliTable(true, header, appRow, multiRow, v2Row))

	// tag onto an existing ref: refused, unless --force (last, as in the
	// usage, or first).
	before := d.state(t)
	d.cliFails(t, "nsfs: image \"multi:latest\": already exists\n", "images", "tag", "docker.io/library/app:v1", "multi:latest")
	d.cliFails(t, "nsfs: image \"nothere\": not found\n", "images", "tag", "nothere", "x")
	d.cliFails(t, "nsfs: \"docker.io/library\" is a ref prefix (a directory of refs), not an image\n", "images", "tag", "docker.io/library", "x")
	d.cliFails(t, "nsfs: image \"../x\": invalid reference: a ref must be a clean relative path (no empty, \".\" or \"..\" component)\n",
		"images", "tag", "multi:latest", "../x")
	d.cliFails(t, "nsfs: image \"a//b\": invalid reference: a ref must be a clean relative path (no empty, \".\" or \"..\" component)\n",
		"images", "tag", "multi:latest", "a//b")
	d.cliFails(t, "nsfs: image \"multi:latest/x\": invalid reference: a prefix of it, \"multi:latest\", is an image\n",
		"images", "tag", "docker.io/library/app:v1", "multi:latest/x")
	d.cliFails(t, "nsfs: images tag: a SRC and at least one DST are required (usage: nsfs images tag SRC DST... [--force])\n",
		"images", "tag", "multi:latest")
	// A tag in a namespace that does not exist creates nothing.
	d.cliFails(t, "nsfs: namespace \"newns\": not found\n", "-n", "newns", "images", "tag", "multi:latest", "x")
	d.assertUnchanged(t, "the refused tags", before)

	assertOutput(t, "images tag --force", d.cli(t, "images", "tag", "docker.io/library/app:v1", "multi:latest", "--force"), lines("multi:latest"))
	forced := append([]string{"multi:latest"}, appRow[1:]...)
	assertOutput(t, "images ls after tag --force", d.cli(t, "images", "ls"), cliTable(true, header, appRow, forced, v2Row))
	assertOutput(t, "images tag --force back", d.cli(t, "images", "tag", "--force", "registry.local/team/multi:v2", "multi:latest"), lines("multi:latest"))
	assertOutput(t, "images ls after the second tag --force", d.cli(t, "images", "ls"), cliTable(true, header, appRow, multiRow, v2Row))
	assertOutput(t, "images/ holds no temporary ref", mustRun(t, d.mnt, "ls", "-A", "ns/default/images"),
		lines("docker.io", "multi:latest", "registry.local"))

	// rm: each removed ref printed; a missing one is an error line, the
	// others still go, and the status is 1.
	before = d.state(t)
	d.cliFails(t, "nsfs: image \"nothere\": not found\n", "images", "rm", "nothere")
	d.cliFails(t, "nsfs: \"docker.io\" is a ref prefix (a directory of refs), not an image\n", "images", "rm", "docker.io")
	d.cliFails(t, "nsfs: images rm: at least one image REF is required (usage: nsfs images rm REF...)\n", "images", "rm")
	d.assertUnchanged(t, "the refused images rm", before)
	r := runCLI(t, []string{"NSFS_MOUNT=" + d.mnt}, "images", "rm", "multi:latest", "nothere", "registry.local/team/multi:v2")
	assertCLIFailure(t, r, "nsfs: image \"nothere\": not found\n")
	assertOutput(t, "stdout of images rm", r.stdout, lines("multi:latest", "registry.local/team/multi:v2"))
	assertOutput(t, "images ls after rm", d.cli(t, "images", "ls", "-q"), lines("docker.io/library/app:v1"))
	// The index went with its last ref; the blobs app:v1 holds stay.
	assertOutput(t, "blobs after rm", d.cli(t, "content", "ls", "-q"), lines(cliDigests(amd.blobs()...)...))

	assertOutput(t, "images rm of the last image", d.cli(t, "images", "rm", "docker.io/library/app:v1"), lines("docker.io/library/app:v1"))
	assertOutput(t, "images ls when empty", d.cli(t, "images", "ls"), cliTable(true, header))
	assertOutput(t, "namespaces rm after the images went", d.cli(t, "namespaces", "rm", "default"), lines("default"))
}

// cliDigests is the sorted "sha256:<hex>" of blobs.
func cliDigests(blobs ...blob) []string {
	var out []string
	for _, b := range blobs {
		out = append(out, b.digest())
	}
	return sortStrings(out)
}

func TestCLIContent(t *testing.T) {
	t.Parallel()
	d := startNsfs(t)
	img := newImage(51, "amd64", 1500, 70000)
	d.putImage(t, "default", "app:v1", img)
	mustRun(t, d.mnt, "setfattr", "-n", "user.containerd.io/gc.ref", "-v", "x", blobPath("default", img.layers[1].hex()))
	// Temporary ingests (names that are no digest) are listed by ls, but
	// are no blobs yet: content ls leaves them out (s14, finding 2).
	mustSh(t, d.mnt, "echo hi > ns/default/blobs/sha256/tmp.x && echo hi > ns/default/blobs/sha256/UPPERCASE")

	assertOutput(t, "content ls -q", d.cli(t, "content", "ls", "-q"), lines(cliDigests(img.blobs()...)...))

	// The table: AGE moves with the clock, the rest is exact.
	out := d.cli(t, "content", "ls")
	rows := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(rows) != 1+len(img.blobs()) || !regexp.MustCompile(`^DIGEST +SIZE +AGE +LABELS$`).MatchString(rows[0]) {
		t.Fatalf("content ls:\n%s", out)
	}
	want := map[string]string{
		img.config.digest():    fmt.Sprintf("%dB -", len(img.config.data)),
		img.manifest.digest():  fmt.Sprintf("%dB -", len(img.manifest.data)),
		img.layers[0].digest(): "1.5kB -",
		img.layers[1].digest(): "70kB containerd.io/gc.ref=x",
	}
	age := regexp.MustCompile(` +(Less than a second|\d+ seconds?|About a minute) +`)
	for _, row := range rows[1:] {
		digest, rest, _ := strings.Cut(row, " ")
		rest = strings.TrimLeft(rest, " ")
		size, rest, _ := strings.Cut(rest, " ")
		if !age.MatchString(" " + rest) {
			t.Errorf("content ls: no AGE in %q", row)
			continue
		}
		got := size + " " + age.ReplaceAllString(" "+rest, "")
		if got != want[digest] {
			t.Errorf("content ls row %q: got %q, want %q", row, got, want[digest])
		}
	}

	// get writes the blob's bytes, whole.
	for _, b := range img.blobs() {
		r := runCLI(t, []string{"NSFS_MOUNT=" + d.mnt}, "content", "get", b.digest())
		if r.code != 0 || r.stderr != "" || r.stdout != string(b.data) {
			t.Errorf("content get %s: exit %d, stderr %q, %d bytes (want %d)", b.digest(), r.code, r.stderr, len(r.stdout), len(b.data))
		}
	}

	before := d.state(t)
	missing := blob{data: []byte("not in the store")}
	d.cliFails(t, fmt.Sprintf("nsfs: content digest %s: not found\n", missing.digest()), "content", "get", missing.digest())
	d.cliFails(t, "nsfs: digest \"nonsense\": invalid checksum digest format\n", "content", "get", "nonsense")
	d.cliFails(t, "nsfs: content get: one DIGEST is required (usage: nsfs content get DIGEST)\n", "content", "get")
	d.assertUnchanged(t, "the refused content get", before)

}

// TestCLIMissingNamespace: every command that reads a namespace says
// that a namespace which does not exist is missing (s14, finding 10: a
// mistyped -n answered `image "x:1": not found`, or an empty table with
// exit 0), and creates nothing.
func TestCLIMissingNamespace(t *testing.T) {
	t.Parallel()
	d := startNsfs(t)
	img := newImage(81, "amd64", 100)
	d.putImage(t, "default", "app:v1", img)
	out := filepath.Join(t.TempDir(), "out.tar")
	before := d.state(t)
	const missing = "nsfs: namespace \"nonexist\": not found\n"
	for _, args := range [][]string{
		{"images", "ls"},
		{"images", "ls", "-q"},
		{"images", "rm", "app:v1"},
		{"images", "tag", "app:v1", "app:v2"},
		{"images", "check"},
		{"images", "check", "-q"},
		{"images", "check", "app:v1"},
		{"content", "ls"},
		{"content", "ls", "-q"},
		{"content", "get", img.config.digest()},
		{"push", "127.0.0.1:1/app:v1"},
		{"namespaces", "label", "nonexist", "a=b"},
	} {
		r := d.cliFails(t, missing, append([]string{"-n", "nonexist"}, args...)...)
		if r.stdout != "" {
			t.Errorf("%s printed %q", r.cmdline, r.stdout)
		}
	}
	d.cliFails(t, "nsfs: export "+out+": namespace \"nonexist\": not found\n", "-n", "nonexist", "images", "export", out, "app:v1")
	d.assertUnchanged(t, "commands on a missing namespace", before)
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("the refused export left %s: %v", out, err)
	}
}

// TestCLIResolution: -n over NSFS_NAMESPACE over CONTAINERD_NAMESPACE
// over default; --mount over NSFS_MOUNT over the mount holding the current directory over the one fuse.nsfs mount.
func TestCLIResolution(t *testing.T) {
	t.Parallel()
	d := startNsfs(t)
	for i, ns := range []string{"default", "a", "b", "c"} {
		if ns != "default" {
			mustRun(t, d.mnt, "mkdir", filepath.Join("ns", ns))
		}
		d.putImage(t, ns, "in-"+ns, newImage(int64(60+i), "amd64", 100))
	}
	mnt := "NSFS_MOUNT=" + d.mnt
	for _, tc := range []struct {
		env  []string
		args []string
		want string
	}{
		{[]string{mnt}, nil, "in-default"},
		{[]string{mnt, "CONTAINERD_NAMESPACE=c"}, nil, "in-c"},
		{[]string{mnt, "NSFS_NAMESPACE=b", "CONTAINERD_NAMESPACE=c"}, nil, "in-b"},
		{[]string{mnt, "NSFS_NAMESPACE=b", "CONTAINERD_NAMESPACE=c"}, []string{"-n", "a"}, "in-a"},
		{[]string{mnt, "NSFS_NAMESPACE=b"}, []string{"--namespace", "c"}, "in-c"},
		// --mount wins over an NSFS_MOUNT that is no mount.
		{[]string{"NSFS_MOUNT=/nonexistent", "NSFS_NAMESPACE=b"}, []string{"--mount", d.mnt}, "in-b"},
	} {
		r := runCLI(t, tc.env, append(tc.args, "images", "ls", "-q")...)
		if r.code != 0 || r.stderr != "" || r.stdout != lines(tc.want) {
			t.Errorf("want %q, got %s", lines(tc.want), r)
		}
	}

	// A directory that is no mount.
	empty := t.TempDir()
	r := runCLI(t, nil, "--mount", empty, "images", "ls")
	assertCLIFailure(t, r, fmt.Sprintf("nsfs: %s is not an nsfs mount (nothing is mounted there): name the mountpoint of a running nsfs, or start one with `nsfs mount [--root STORE] MOUNTPOINT`\n", empty))
	r = runCLI(t, []string{"NSFS_MOUNT=" + empty}, "namespaces", "ls")
	assertCLIFailure(t, r, fmt.Sprintf("nsfs: %s is not an nsfs mount (nothing is mounted there): name the mountpoint of a running nsfs, or start one with `nsfs mount [--root STORE] MOUNTPOINT`\n", empty))
}

// TestCLIMountMustBeAnNsfsMountpoint: --mount and NSFS_MOUNT name the
// mountpoint of a fuse.nsfs filesystem (QA 3, finding 3). A directory that
// merely looks like a store (it has ns/), a path inside a mount, a missing
// path, or another filesystem's mountpoint is refused in one line naming
// it, and nothing is written anywhere; a symlink to the mountpoint works.
func TestCLIMountMustBeAnNsfsMountpoint(t *testing.T) {
	t.Parallel()
	d := startNsfs(t)
	fake := filepath.Join(t.TempDir(), "fake")
	if err := os.MkdirAll(filepath.Join(fake, "ns"), 0o755); err != nil {
		t.Fatal(err)
	}
	before := d.state(t)
	for _, env := range [][]string{nil, {"NSFS_MOUNT=" + fake}} {
		args := []string{"namespaces", "create", "foo", "a=b"}
		if env == nil {
			args = append([]string{"--mount", fake}, args...)
		}
		r := runCLI(t, env, args...)
		assertCLIFailure(t, r, fmt.Sprintf("nsfs: %s is not an nsfs mount (nothing is mounted there): name the mountpoint of a running nsfs, or start one with `nsfs mount [--root STORE] MOUNTPOINT`\n", fake))
	}
	if entries, err := os.ReadDir(filepath.Join(fake, "ns")); err != nil || len(entries) != 0 {
		t.Errorf("a refused command wrote into the fake store: %v %v", entries, err)
	}

	inside := filepath.Join(d.mnt, "ns")
	r := runCLI(t, nil, "--mount", inside, "namespaces", "create", "foo")
	assertCLIFailure(t, r, fmt.Sprintf("nsfs: %s is not an nsfs mountpoint but a path inside the nsfs mount %s: name the mountpoint, --mount %s\n", inside, d.mnt, d.mnt))
	missing := filepath.Join(fake, "missing")
	r = runCLI(t, nil, "--mount", missing, "images", "ls")
	assertCLIFailure(t, r, fmt.Sprintf("nsfs: %s is not an nsfs mount (it does not exist): name the mountpoint of a running nsfs, or start one with `nsfs mount [--root STORE] MOUNTPOINT`\n", missing))
	r = runCLI(t, nil, "--mount", "/proc", "images", "ls")
	assertCLIFailure(t, r, "nsfs: /proc is not a mounted nsfs store (its filesystem is proc): name an nsfs mountpoint with --mount or NSFS_MOUNT\n")
	d.assertUnchanged(t, "commands refused for their --mount", before)

	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(d.mnt, link); err != nil {
		t.Fatal(err)
	}
	runCLIOK := runCLI(t, nil, "--mount", link, "namespaces", "create", "viaLink")
	if runCLIOK.code != 0 || runCLIOK.stderr != "" {
		t.Errorf("--mount through a symlink to the mountpoint: %s", runCLIOK)
	}
	if _, err := os.Stat(d.path("ns", "viaLink")); err != nil {
		t.Errorf("namespaces create through the symlink made nothing: %v", err)
	}
}

// TestCLIDaemonGone: after kill -9 of the daemon its mount stays, dead
// ("transport endpoint is not connected"); a command says so at once,
// with the command that recovers it (QA 3, finding 4), and that command
// does.
func TestCLIDaemonGone(t *testing.T) {
	t.Parallel()
	d := startNsfs(t)
	// Killed only once the mount is done (see TestUmountDeadMount).
	d.waitForLog(t, "nsfs: serving ")
	d.putImage(t, "default", "app:v1", newImage(91, "amd64", 100))
	d.kill9(t)
	want := fmt.Sprintf("nsfs: the nsfs daemon serving %s is gone (transport endpoint is not connected): run `nsfs mount --root %s %s` again to recover\n", d.mnt, d.root, d.mnt)
	for _, args := range [][]string{
		{"images", "ls"},
		{"namespaces", "create", "foo"},
		{"-n", "other", "images", "import", "/nonexistent.tar"},
		{"content", "ls"},
	} {
		start := time.Now()
		r := runCLI(t, nil, append([]string{"--mount", d.mnt}, args...)...)
		assertCLIFailure(t, r, want)
		if took := time.Since(start); took > 5*time.Second {
			t.Errorf("%s took %v to notice the dead daemon", r.cmdline, took)
		}
	}
	// What the message says to run recovers the mount.
	d = d.restart(t)
	assertOutput(t, "images ls -q after the recovery", d.cli(t, "images", "ls", "-q"), lines("app:v1"))
}

// TestCLIUsageErrors: a bad flag or an unknown command is one line on
// stderr naming the command as typed and where its help is, exit status 1,
// nothing on stdout (QA 3, finding 10); help texts keep their layout.
func TestCLIUsageErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"images", "ls", "-x"}, "nsfs: images ls: flag provided but not defined: -x (see nsfs images ls --help)\n"},
		{[]string{"i", "list", "--bogus"}, "nsfs: i list: flag provided but not defined: -bogus (see nsfs i list --help)\n"},
		{[]string{"images", "pull", "--bogus", "x"}, "nsfs: images pull: flag provided but not defined: -bogus (see nsfs images pull --help)\n"},
		{[]string{"--bogus", "images", "ls"}, "nsfs: flag provided but not defined: -bogus (see nsfs --help)\n"},
		{[]string{"bogus"}, "nsfs: unknown command \"bogus\" (see nsfs --help)\n"},
		{[]string{"help", "bogus"}, "nsfs: unknown command \"bogus\" (see nsfs --help)\n"},
		{[]string{"images", "bogus"}, "nsfs: images: unknown command \"bogus\" (see nsfs images --help)\n"},
		{[]string{"images", "rm"}, "nsfs: images rm: at least one image REF is required (usage: nsfs images rm REF...)\n"},
	} {
		r := runCLI(t, nil, tc.args...)
		assertCLIFailure(t, r, tc.want)
		if r.stdout != "" {
			t.Errorf("%s printed on stdout: %q", r.cmdline, r.stdout)
		}
	}

	r := runCLI(t, nil, "images", "pull", "--help")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "NAME:\n   nsfs images pull - ") || !strings.Contains(r.stdout, "\n   nsfs images pull [command options] REF\n") {
		t.Errorf("images pull --help should call itself nsfs images pull, got %s", r)
	}
	r = runCLI(t, nil, "pull", "--help")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "NAME:\n   nsfs pull - ") {
		t.Errorf("pull --help should call itself nsfs pull, got %s", r)
	}
	// DESCRIPTION lines are indented by three spaces, as urfave/cli
	// indents them, never more.
	for _, cmd := range [][]string{{"images", "import"}, {"images", "export"}, {"images", "ls"}, {"images", "pull"}, {"namespaces", "create"}} {
		r := runCLI(t, nil, append(cmd, "--help")...)
		_, desc, _ := strings.Cut(r.stdout, "DESCRIPTION:\n")
		desc, _, _ = strings.Cut(desc, "\n\n")
		if r.code != 0 || desc == "" {
			t.Errorf("%s has no DESCRIPTION: %s", r.cmdline, r)
			continue
		}
		for _, line := range strings.Split(desc, "\n") {
			if line != "" && (!strings.HasPrefix(line, "   ") || strings.HasPrefix(line, "    ") || strings.Contains(line, "\t")) {
				t.Errorf("%s: DESCRIPTION line not indented by exactly three spaces: %q", r.cmdline, line)
			}
		}
	}
}

// TestCLIRefPrefixes: a ref-prefix directory (a directory of refs) is no
// image, and no ref can lie below an image; tag, rm and import say which
// (QA 3, finding 8), and change nothing.
func TestCLIRefPrefixes(t *testing.T) {
	t.Parallel()
	d := startNsfs(t)
	img := newImage(95, "amd64", 100)
	d.putImage(t, "default", "A", img)
	d.cli(t, "images", "tag", "A", "x/y/z:1", "foo")
	before := d.state(t)
	prefix := "nsfs: \"x/y\" is a ref prefix (a directory of refs), not an image\n"
	below := "nsfs: image \"foo/bar:1\": invalid reference: a prefix of it, \"foo\", is an image\n"
	d.cliFails(t, prefix, "images", "tag", "A", "x/y")
	d.cliFails(t, prefix, "images", "tag", "--force", "A", "x/y")
	d.cliFails(t, prefix, "images", "tag", "A", "x/y", "--force")
	d.cliFails(t, prefix, "images", "tag", "x/y", "B")
	d.cliFails(t, prefix, "images", "rm", "x/y")
	d.cliFails(t, below, "images", "tag", "A", "foo/bar:1")
	d.cliFails(t, below, "images", "tag", "--force", "A", "foo/bar:1")
	d.cliFails(t, below, "images", "rm", "foo/bar:1")

	for _, tc := range []struct{ ref, want string }{
		{"foo/bar:1", below},
		{"x/y", prefix},
	} {
		archive := writeTemp(t, "prefix.tar", ociLayoutTar(t, []map[string]any{archiveIndexEntry(img.manifest, annotationImageName, tc.ref)}, img.blobs()...))
		d.cliFails(t, "nsfs: import "+archive+": "+strings.TrimPrefix(tc.want, "nsfs: "), "images", "import", archive)
	}
	d.assertUnchanged(t, "the refused tags, removals and imports", before)
}

// TestCLIFindsTheOneMount runs the command without --mount or NSFS_MOUNT,
// in a private mount namespace where only the test's own mounts are left
// (the other tests' mounts, made in parallel, would count too).
// With several, it finds the one holding the current directory.
func TestCLIFindsTheOneMount(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("unshare is not installed (util-linux)")
	}
	d := startNsfs(t)
	d.putImage(t, "default", "app:v1", newImage(71, "amd64", 100))
	second := startNsfs(t)

	// onlyScript runs in a new mount namespace: every fuse.nsfs mount but
	// those in KEEP is lazily unmounted (privately: the mounts outside
	// stay; mounts come and go while other tests run, so until only KEEP
	// is left), then it goes to CWD, if set, and runs its arguments.
	onlyScript := `for try in 1 2 3 4 5; do
	others=0
	for m in $(findmnt -rn -t fuse.nsfs -o TARGET); do
		case " $KEEP " in *" $m "*) ;; *) umount -l "$m" 2>/dev/null; others=1 ;; esac
	done
	[ $others = 0 ] && cd "${CWD:-.}" && exec "$@"
done
echo "the other fuse.nsfs mounts would not go: $(findmnt -rn -t fuse.nsfs -o TARGET)" >&2
exit 99`
	// onlyMounts runs nsfs ARGS where only the mounts keep are left.
	onlyMounts := func(keep []string, args ...string) result {
		env := []string{"KEEP=" + strings.Join(keep, " ")}
		return runCLIWith(t, env, "unshare", append([]string{"-m", "--propagation", "private", "sh", "-c", onlyScript, "sh", nsfsBin}, args...)...)
	}

	r := onlyMounts([]string{d.mnt}, "images", "ls", "-q")
	if r.code != 0 || r.stderr != "" || r.stdout != lines("app:v1") {
		t.Errorf("with one mount, want it found, got %s", r)
	}
	r = onlyMounts(nil, "images", "ls")
	assertCLIFailure(t, r, "nsfs: no nsfs mount found: name one with --mount or NSFS_MOUNT, or start one with `nsfs mount [--root STORE] MOUNTPOINT`\n")
	r = onlyMounts([]string{d.mnt, second.mnt}, "images", "ls")
	mounts := []string{d.mnt, second.mnt}
	if cliMountIndex(t, second.mnt) < cliMountIndex(t, d.mnt) {
		mounts = []string{second.mnt, d.mnt}
	}
	assertCLIFailure(t, r, fmt.Sprintf("nsfs: 2 nsfs mounts found (%s): choose one with --mount or NSFS_MOUNT\n", strings.Join(mounts, ", ")))
	// Among several, the one holding the current directory.
	for cwd, want := range map[string]string{
		d.mnt: lines("app:v1"),
		filepath.Join(d.mnt, "ns/default/images"): lines("app:v1"),
		filepath.Join(second.mnt, "ns"):           "",
	} {
		r = runCLIWith(t, []string{"KEEP=" + d.mnt + " " + second.mnt, "CWD=" + cwd}, "unshare", "-m", "--propagation", "private", "sh", "-c", onlyScript, "sh", nsfsBin, "images", "ls", "-q")
		if r.code != 0 || r.stderr != "" || r.stdout != want {
			t.Errorf("in %s among two mounts: want %q, got %s", cwd, want, r)
		}
	}
	// NSFS_MOUNT chooses among several.
	r = onlyMounts([]string{d.mnt, second.mnt}, "--mount", second.mnt, "images", "ls", "-q")
	if r.code != 0 || r.stderr != "" || r.stdout != "" {
		t.Errorf("--mount of the second mount: want its empty default, got %s", r)
	}
	if countMounts(t, d.mnt) != 1 || countMounts(t, second.mnt) != 1 {
		t.Errorf("the private unmounts reached the test's mount namespace")
	}
}

// cliMountIndex is the line of mnt in /proc/self/mountinfo (the order the
// command lists mounts in).
func cliMountIndex(t *testing.T, mnt string) int {
	t.Helper()
	for i, m := range mountTable(t) {
		if m.Mountpoint == mnt && m.FSType == "fuse.nsfs" {
			return i
		}
	}
	t.Fatalf("%s is not mounted", mnt)
	return -1
}

// TestCLIImagesOfDockerMediaTypes: Docker schema 2 manifests and manifest
// lists list with their own media types and platforms.
func TestCLIImagesOfDockerMediaTypes(t *testing.T) {
	t.Parallel()
	d := startNsfs(t)
	amd := newDockerImage(81, "amd64", 1500)
	arm := newDockerImage(82, "arm64", 2500)
	d.putImage(t, "default", "docker/amd", amd)
	d.putImage(t, "default", "docker/arm", arm)
	list := newDockerList(amd, arm)
	d.putManifest(t, "default", "docker/list", list.data)

	size := func(img testImage) int {
		return len(img.manifest.data) + len(img.config.data) + len(img.layers[0].data)
	}
	assertOutput(t, "images ls", d.cli(t, "images", "ls"), cliTable(true,
		[]string{"REF", "TYPE", "DIGEST", "SIZE", "PLATFORMS", "LABELS"},
		[]string{"docker/amd", mediaTypeDockerSchema2, amd.manifest.digest(), cliKiB(t, size(amd)), "linux/amd64", "-"},
		[]string{"docker/arm", mediaTypeDockerSchema2, arm.manifest.digest(), cliKiB(t, size(arm)), "linux/arm64", "-"},
		[]string{"docker/list", mediaTypeDockerList, list.digest(), cliKiB(t, len(list.data)+size(amd)+size(arm)), "linux/amd64,linux/arm64", "-"}))
}

// TestCLIImagesListQuietOpensNoImage: `images ls -q` prints the refs from
// the listing of images/ alone (s14, finding 15: 1.2 s for 1000 refs).
// The daemon's writes to /dev/fuse show it: images ls reads every
// manifest through the mount (image reads bypass the page cache), -q
// reads none.
func TestCLIImagesListQuietOpensNoImage(t *testing.T) {
	t.Parallel()
	d := startNsfs(t)
	img := newImage(71, "amd64", 100)
	for _, b := range append([]blob{img.config}, img.layers...) {
		d.putBlob(t, "default", b)
	}
	// A manifest of 1 MiB (an annotation pads it), under four refs.
	big := mustJSON(map[string]any{
		"schemaVersion": 2,
		"mediaType":     mediaTypeOCIManifest,
		"config":        img.config.descriptor(),
		"layers":        []descriptor{img.layers[0].descriptor()},
		"annotations":   map[string]string{"pad": strings.Repeat("x", 1<<20)},
	})
	refs := []string{"a:1", "b:1", "c:1", "d:1"}
	d.putManifest(t, "default", refs[0], big)
	for _, ref := range refs[1:] {
		mustRun(t, d.mnt, "ln", imagePath("default", refs[0]), imagePath("default", ref))
	}

	written := d.wchar(t)
	assertOutput(t, "images ls -q", d.cli(t, "images", "ls", "-q"), lines(refs...))
	if delta := d.wchar(t) - written; delta >= 256<<10 {
		t.Errorf("the daemon wrote %d bytes to the kernel for images ls -q: it read the %d manifests of 1 MiB", delta, len(refs))
	}
	// The measure can see a read: images ls reads each manifest.
	written = d.wchar(t)
	d.cli(t, "images", "ls")
	if delta := d.wchar(t) - written; delta < int64(len(refs))<<20 {
		t.Errorf("the daemon wrote only %d bytes for images ls, which reads %d manifests of 1 MiB", delta, len(refs))
	}
}
