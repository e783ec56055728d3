package integration

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// Tenants: namespaces with owners and modes that the kernel enforces
// (--allow-other), root's quotas and sharing per namespace, df per
// namespace, with real users made for the test (useradd, userdel at
// cleanup) and commands run as them through setpriv.

// tenantMount mounts a new store with --allow-other at a mountpoint every
// user can reach (t.TempDir is private to root).
func tenantMount(t *testing.T, opts ...daemonOption) *daemon {
	t.Helper()
	requireMount(t)
	base, err := os.MkdirTemp("", "nsfs-tenants-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) }) // runs after the unmount
	mnt := filepath.Join(base, "mnt")
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	opts = append([]daemonOption{withStore(filepath.Join(base, "root"), mnt), withFlags("--allow-other")}, opts...)
	return startNsfs(t, opts...)
}

// tenant is a local user made for one test.
type tenant struct {
	name     string
	uid, gid int
}

// addTenant makes a user (and its group) that is removed at cleanup.
func addTenant(t *testing.T, name string) tenant {
	t.Helper()
	for _, tool := range []string{"useradd", "userdel", "setpriv"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is needed to run as other users: %v", tool, err)
		}
	}
	run(t, "", "userdel", name) // left by a test that was killed
	mustRun(t, "", "useradd", "--no-create-home", "--user-group", "--shell", "/bin/sh", name)
	t.Cleanup(func() {
		if r := run(t, "", "userdel", name); r.code != 0 {
			t.Errorf("remove user %s: %s", name, r)
		}
	})
	u, err := user.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return tenant{name: name, uid: uid, gid: gid}
}

// as is the command line that runs args as the tenant, with nothing of
// root's (supplementary groups, HOME) left.
func (u tenant) as(t *testing.T, args ...string) []string {
	return append([]string{"--reuid", strconv.Itoa(u.uid), "--regid", strconv.Itoa(u.gid), "--clear-groups",
		"env", "HOME=/nonexistent", "DOCKER_CONFIG=" + emptyDockerConfig(t)}, args...)
}

// sh runs a shell script as the tenant in dir.
func (u tenant) sh(t *testing.T, dir, script string) result {
	t.Helper()
	return run(t, dir, "setpriv", u.as(t, "sh", "-c", script)...)
}

// mustSh runs a script as the tenant that must succeed without error output.
func (u tenant) mustSh(t *testing.T, dir, script string) string {
	t.Helper()
	r := u.sh(t, dir, script)
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("as %s: want success without error output, got %s", u.name, r)
	}
	return r.stdout
}

// mustFail runs a script as the tenant that must fail saying want (the
// C locale's text of the errno).
func (u tenant) mustFail(t *testing.T, dir, want, script string) {
	t.Helper()
	r := u.sh(t, dir, script)
	if r.code == 0 || !strings.Contains(r.stderr, want) {
		t.Errorf("as %s: want failure with %q, got %s", u.name, want, r)
	}
}

// nsfs runs the CLI as the tenant.
func (u tenant) nsfs(t *testing.T, d *daemon, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), toolTimeout)
	defer cancel()
	cmd := command(ctx, "setpriv", u.as(t, append([]string{nsfsBin, "--mount", d.mnt}, args...)...)...)
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := runChild(t, cmd)
	r := result{cmdline: u.name + "$ nsfs " + shortArgs(args), stdout: stdout.String(), stderr: stderr.String(), code: cmd.ProcessState.ExitCode()}
	if ctx.Err() != nil {
		t.Errorf("%s: still running after %v; killed", r.cmdline, toolTimeout)
	} else if _, ok := err.(*exec.ExitError); err != nil && !ok {
		t.Errorf("%s: %v", r.cmdline, err)
	}
	return r
}

// ownership is how ls -ln shows a node: type and mode, uid, gid.
func ownership(t *testing.T, p string) string {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(p, &st); err != nil {
		t.Fatalf("stat %s: %v", p, err)
	}
	return fmt.Sprintf("%v %d:%d", os.FileMode(st.Mode&0o777)|modeType(st.Mode), st.Uid, st.Gid)
}

func modeType(m uint32) os.FileMode {
	if m&unix.S_IFMT == unix.S_IFDIR {
		return os.ModeDir
	}
	return 0
}

// tenantState is d.state with every namespace's owner and mode and root's
// settings, which a refusal must not change either.
func tenantState(t *testing.T, d *daemon) string {
	t.Helper()
	out := []string{d.state(t)}
	entries, err := os.ReadDir(d.path("ns"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		p := d.path("ns", e.Name())
		line := "namespace " + e.Name() + " " + ownership(t, p)
		for _, key := range []string{"quota", "sharing"} {
			buf := make([]byte, 64)
			if n, err := unix.Getxattr(p, "trusted.nsfs."+key, buf); err == nil {
				line += fmt.Sprintf(" %s=%s", key, buf[:n])
			}
		}
		out = append(out, line)
	}
	return strings.Join(out, "\n")
}

// assertTenantUnchanged compares tenantState with one taken before a
// refusal.
func assertTenantUnchanged(t *testing.T, d *daemon, what, before string) {
	t.Helper()
	if after := tenantState(t, d); after != before {
		t.Errorf("%s changed the store:\n%s", what, lineDiff(before, after))
	}
}

func TestTenantOwnersAndModes(t *testing.T) {
	d := tenantMount(t)
	alice, bob := addTenant(t, "nsfs-own-alice"), addTenant(t, "nsfs-own-bob")
	mine := blob{data: []byte("alice-bytes")}
	theirs := blob{data: []byte("bob-bytes")}

	// mkdir by alice: hers, with the mode her umask leaves; inside follows.
	alice.mustSh(t, d.mnt, "umask 077 && mkdir ns/alice && printf alice-bytes > "+blobPath("alice", mine.hex())+" && setfattr -n user.team -v alice ns/alice")
	aliceIDs := fmt.Sprintf("%d:%d", alice.uid, alice.gid)
	var st unix.Stat_t
	if err := unix.Stat(d.path("ns"), &st); err != nil || st.Mode&0o7777 != 0o1777 || st.Uid != 0 {
		t.Errorf("ns/: mode %o uid %d, %v; want 1777 root's, like /tmp", st.Mode&0o7777, st.Uid, err)
	}
	for p, want := range map[string]string{
		"ns/default":                  "drwxr-xr-x 0:0",
		"ns/default/images":           "drwxr-xr-x 0:0",
		"ns/alice":                    "drwx------ " + aliceIDs,
		"ns/alice/images":             "drwx------ " + aliceIDs,
		"ns/alice/blobs/sha256":       "drwx------ " + aliceIDs,
		blobPath("alice", mine.hex()): "-r-------- " + aliceIDs,
	} {
		if got := ownership(t, d.path(p)); got != want {
			t.Errorf("%s: %s, want %s", p, got, want)
		}
	}

	// bob can do nothing with a 0700 namespace of alice's.
	before := tenantState(t, d)
	denied, notPermitted := "Permission denied", "Operation not permitted"
	bob.mustFail(t, d.mnt, denied, "ls ns/alice")
	bob.mustFail(t, d.mnt, denied, "cat "+blobPath("alice", mine.hex()))
	bob.mustFail(t, d.mnt, denied, "printf bob-bytes > "+blobPath("alice", theirs.hex()))
	bob.mustFail(t, d.mnt, denied, "setfattr -n user.team -v bob ns/alice")
	bob.mustFail(t, d.mnt, notPermitted, "rm -rf ns/alice")
	bob.mustFail(t, d.mnt, notPermitted, "chmod 0777 ns/alice")
	bob.mustFail(t, d.mnt, denied, "mkdir ns/default/images/bob")
	r := bob.nsfs(t, d, "-n", "alice", "images", "ls")
	if r.code != 1 || strings.Count(r.stderr, "\n") != 1 || !strings.Contains(r.stderr, `"alice"`) {
		t.Errorf("nsfs images ls by bob in alice's 0700 namespace: want exit 1 and one line naming it, got %s", r)
	}
	t.Logf("%s: %s", r.cmdline, strings.TrimSpace(r.stderr))
	// bob still lists every namespace; what he may not read shows "?".
	r = bob.nsfs(t, d, "namespaces", "ls")
	if got := strings.Join(strings.Fields(r.stdout), " "); r.code != 0 || r.stderr != "" ||
		!strings.Contains(got, "alice "+alice.name+" ? ? ? ? default root ? ? ?") {
		t.Errorf("nsfs namespaces ls by bob: %s", r)
	}
	assertTenantUnchanged(t, d, "bob's attempts on a 0700 namespace", before)

	// 0755: bob reads, and still changes nothing.
	alice.mustSh(t, d.mnt, "chmod 0755 ns/alice")
	assertOutput(t, "ls -ln of alice's images/ after chmod", ownership(t, d.path("ns/alice/images")), "drwxr-xr-x "+aliceIDs)
	assertOutput(t, "bob: ls", bob.mustSh(t, d.mnt, "ls ns/alice/blobs/sha256"), lines(mine.hex()))
	assertOutput(t, "bob: cat", bob.mustSh(t, d.mnt, "cat "+blobPath("alice", mine.hex())), "alice-bytes")
	before = tenantState(t, d)
	bob.mustFail(t, d.mnt, denied, "printf bob-bytes > "+blobPath("alice", theirs.hex()))
	bob.mustFail(t, d.mnt, denied, "rm -f "+blobPath("alice", mine.hex()))
	bob.mustFail(t, d.mnt, denied, "setfattr -n user.team -v bob ns/alice")
	bob.mustFail(t, d.mnt, notPermitted, "rmdir ns/alice")
	bob.mustFail(t, d.mnt, notPermitted, "chmod 0777 ns/alice")
	alice.mustFail(t, d.mnt, notPermitted, "chown "+bob.name+" ns/alice")
	assertTenantUnchanged(t, d, "refusals on a 0755 namespace", before)

	// chgrp by the owner to her own group; chown by root; root can do everything.
	alice.mustSh(t, d.mnt, "chgrp "+alice.name+" ns/alice && chmod g+w ns/alice")
	assertOutput(t, "after chmod g+w", ownership(t, d.path("ns/alice")), "drwxrwxr-x "+aliceIDs)
	mustRun(t, d.mnt, "chown", bob.name+":"+bob.name, "ns/alice")
	bobIDs := fmt.Sprintf("%d:%d", bob.uid, bob.gid)
	assertOutput(t, "after chown by root", ownership(t, d.path("ns/alice")), "drwxrwxr-x "+bobIDs)
	bob.mustSh(t, d.mnt, "chmod 0700 ns/alice && printf bob-bytes > "+blobPath("alice", theirs.hex()))
	alice.mustFail(t, d.mnt, denied, "ls ns/alice")
	mustRun(t, d.mnt, "ls", "ns/alice/blobs/sha256")

	// Kept across a remount.
	d = d.remount(t)
	assertOutput(t, "owner after remount", ownership(t, d.path("ns/alice")), "drwx------ "+bobIDs)
	assertOutput(t, "blob after remount", ownership(t, d.path(blobPath("alice", theirs.hex()))), "-r-------- "+bobIDs)

	// The owner removes her empty namespace; nobody else can.
	alice.mustSh(t, d.mnt, "umask 022 && mkdir ns/empty")
	assertOutput(t, "mkdir with umask 022", ownership(t, d.path("ns/empty")), "drwxr-xr-x "+aliceIDs)
	bob.mustFail(t, d.mnt, notPermitted, "rmdir ns/empty")
	alice.mustSh(t, d.mnt, "rmdir ns/empty")
}

// dfBytes is what df says of p, in bytes: size, used, available.
func dfBytes(t *testing.T, dir, p string) string {
	t.Helper()
	out := mustRun(t, dir, "df", "--block-size=1", "--output=size,used,avail", p)
	fields := strings.Fields(out)
	if len(fields) != 6 {
		t.Fatalf("df %s printed %q", p, out)
	}
	return strings.Join(fields[3:], " ")
}

func TestTenantQuota(t *testing.T) {
	d := tenantMount(t)
	bob := addTenant(t, "nsfs-quota-bob")
	bob.mustSh(t, d.mnt, "mkdir ns/bob")
	img := newImage(1301, "amd64", 40<<10, 40<<10)
	d.putImage(t, "default", "app:v1", img)

	// Only root sets a quota; bob cannot even read it.
	bob.mustFail(t, d.mnt, "Operation not permitted", "setfattr -n trusted.nsfs.quota -v 1T ns/bob")
	mustFail(t, d.mnt, "Invalid argument", "setfattr", "-n", "trusted.nsfs.quota", "-v", "lots", "ns/bob")
	mustFail(t, d.mnt, "Operation not supported", "setfattr", "-n", "trusted.nsfs.colour", "-v", "red", "ns/bob")
	if r := bob.nsfs(t, d, "namespaces", "quota", "bob", "1T"); r.code != 1 || r.stderr != "nsfs: namespace \"bob\": only root can set a quota\n" {
		t.Errorf("nsfs namespaces quota by bob: %s", r)
	}
	assertOutput(t, "nsfs namespaces quota by root", mustPullCLI(t, d, nil, "namespaces", "quota", "bob", "64K"), "")
	assertOutput(t, "getfattr of the quota", mustRun(t, d.mnt, "getfattr", "--only-values", "-n", "trusted.nsfs.quota", "ns/bob"), "65536")
	bob.mustFail(t, d.mnt, "No such attribute", "getfattr -n trusted.nsfs.quota ns/bob")
	assertOutput(t, "df ns/bob, empty", dfBytes(t, d.mnt, "ns/bob"), "65536 0 65536")

	// A blob over the quota: EDQUOT, nothing kept.
	big := blob{data: randomBytes(1302, 65<<10)}
	src := filepath.Join(d.mnt, "..", "big")
	if err := os.WriteFile(src, big.data, 0o644); err != nil {
		t.Fatal(err)
	}
	before := tenantState(t, d)
	bob.mustFail(t, d.mnt, "Disk quota exceeded", "cp ../big "+blobPath("bob", big.hex()))
	assertTenantUnchanged(t, d, "a blob over the quota", before)
	// An image whose blobs another namespace holds: its claims count too.
	bob.mustFail(t, d.mnt, "Disk quota exceeded", "cp "+imagePath("default", "app:v1")+" "+imagePath("bob", "app:v1"))
	assertTenantUnchanged(t, d, "an image claiming blobs over the quota", before)
	f, err := os.OpenFile(d.path(imagePath("bob", "app:v1")), os.O_WRONLY|os.O_CREATE|os.O_TRUNC|unix.O_CLOEXEC, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(img.manifest.data); err != nil {
		t.Fatal(err)
	}
	assertErrno(t, "close of an image over the quota", f.Close(), syscall.EDQUOT)
	assertTenantUnchanged(t, d, "an image claiming blobs over the quota (Go)", before)

	// Raised, the same copy passes and moves no bytes; df shows the use.
	mustRun(t, d.mnt, "setfattr", "-n", "trusted.nsfs.quota", "-v", "1M", "ns/bob")
	bob.mustSh(t, d.mnt, "cp "+imagePath("default", "app:v1")+" "+imagePath("bob", "app:v1"))
	held := blobsSize(img.blobs()...)
	assertOutput(t, "df ns/bob", dfBytes(t, d.mnt, "ns/bob"), fmt.Sprintf("%d %d %d", 1<<20, roundUp(held), 1<<20-roundUp(held)))

	// Lowered below the use: nothing goes, nothing more comes.
	mustRun(t, d.mnt, "setfattr", "-n", "trusted.nsfs.quota", "-v", "1", "ns/bob")
	assertOutput(t, "bob's blobs after the quota went below them", mustRun(t, d.mnt, "ls", "ns/bob/blobs/sha256"), lines(img.hexes()...))
	before = tenantState(t, d)
	bob.mustFail(t, d.mnt, "Disk quota exceeded", "printf x | cat > "+blobPath("bob", sha256Hex([]byte("x"))))
	assertTenantUnchanged(t, d, "a blob over a lowered quota", before)

	// Removed: no quota; df shows the store's filesystem's size.
	mustRun(t, d.mnt, "setfattr", "-x", "trusted.nsfs.quota", "ns/bob")
	mustFail(t, d.mnt, "No such attribute", "getfattr", "-n", "trusted.nsfs.quota", "ns/bob")
	bob.mustSh(t, d.mnt, "printf x > "+blobPath("bob", sha256Hex([]byte("x"))))
	store := strings.Fields(dfBytes(t, d.mnt, "."))
	mine := strings.Fields(dfBytes(t, d.mnt, "ns/bob"))
	if store[0] != mine[0] || mine[1] != strconv.FormatInt(roundUp(held+1), 10) {
		t.Errorf("df without a quota: ns/bob %v, the mount %v; want the mount's size and %d used", mine, store, roundUp(held+1))
	}
}

// roundUp is n in df's blocks of 4096 bytes, as bytes.
func roundUp(n int64) int64 { return (n + 4095) / 4096 * 4096 }

// trusted.nsfs.sharing overrides the mount's policy for one namespace.
func TestTenantSharingPerNamespace(t *testing.T) {
	d := tenantMount(t)
	img := newImage(1303, "amd64", 1000)
	d.putImage(t, "default", "app:v1", img)
	mustRun(t, d.mnt, "mkdir", "ns/iso", "ns/open")
	mustRun(t, d.mnt, "setfattr", "-n", "trusted.nsfs.sharing", "-v", "isolated", "ns/iso")
	assertOutput(t, "getfattr", mustRun(t, d.mnt, "getfattr", "--only-values", "-n", "trusted.nsfs.sharing", "ns/iso"), "isolated")
	mustFail(t, d.mnt, "Invalid argument", "setfattr", "-n", "trusted.nsfs.sharing", "-v", "open", "ns/iso")

	// Isolated: what default holds answers as what nobody holds.
	layer := img.layers[0]
	_, errHeld := os.Stat(d.path(blobPath("iso", layer.hex())))
	_, errAbsent := os.Stat(d.path(blobPath("iso", sha256Hex([]byte("nobody")))))
	assertErrno(t, "stat in iso of a blob default holds", errHeld, syscall.ENOENT)
	assertErrno(t, "stat in iso of a blob nobody holds", errAbsent, syscall.ENOENT)
	// An image in iso naming blobs iso cannot see is incomplete: naming
	// them grants no read.
	mustRun(t, d.mnt, "cp", imagePath("default", "app:v1"), imagePath("iso", "app:v1"))
	_, errHeld = os.Stat(d.path(blobPath("iso", layer.hex())))
	assertErrno(t, "stat in iso of a layer its incomplete image names", errHeld, syscall.ENOENT)
	if _, err := os.ReadFile(d.path(blobPath("iso", layer.hex()))); !errors.Is(err, syscall.ENOENT) {
		t.Errorf("read in iso of a layer its incomplete image names: %v, want ENOENT", err)
	}
	mustRun(t, d.mnt, "rm", imagePath("iso", "app:v1"))
	assertOutput(t, "ls iso's images once its incomplete image went", mustRun(t, d.mnt, "ls", "-A", "ns/iso/images"), "")
	assertOutput(t, "ls iso's blobs once its incomplete image went", mustRun(t, d.mnt, "ls", "-A", blobPath("iso", "")), "")
	// Shared: the copy claims them.
	mustRun(t, d.mnt, "cp", imagePath("default", "app:v1"), imagePath("open", "app:v1"))
	// The shareable label keeps its meaning for an isolated namespace.
	mustRun(t, d.mnt, "setfattr", "-n", "user.containerd.io/namespace.shareable", "-v", "true", "ns/open")
	if _, err := os.Stat(d.path(blobPath("iso", layer.hex()))); err != nil {
		t.Errorf("iso cannot see a blob a shareable namespace holds: %v", err)
	}
	mustRun(t, d.mnt, "setfattr", "-x", "user.containerd.io/namespace.shareable", "ns/open")
	_, errHeld = os.Stat(d.path(blobPath("iso", layer.hex())))
	assertErrno(t, "stat in iso once open is no longer shareable", errHeld, syscall.ENOENT)
	// Back to the mount's policy: iso sees them too.
	mustRun(t, d.mnt, "setfattr", "-x", "trusted.nsfs.sharing", "ns/iso")
	if _, err := os.Stat(d.path(blobPath("iso", layer.hex()))); err != nil {
		t.Errorf("iso back to shared: %v", err)
	}
}

// The seed's scenario across users: alice's private namespace, bob's pull
// of the same image under a quota, df of each.
func TestTenantsAliceAndBob(t *testing.T) {
	reg := startRegistry(t)
	d := tenantMount(t)
	alice, bob := addTenant(t, "nsfs-ab-alice"), addTenant(t, "nsfs-ab-bob")
	app := imageWithLayers(1311, "amd64", nil, 300<<10, 200<<10)
	pushImage(t, reg.addr+"/test/app", "v1", app, nil)
	ref := reg.addr + "/test/app:v1"
	size := blobsSize(app.blobs()...)

	alice.mustSh(t, d.mnt, "umask 077 && mkdir ns/alice")
	if r := alice.nsfs(t, d, "-n", "alice", "pull", "--plain-http", "--quiet", ref); r.code != 0 || r.stderr != "" {
		t.Fatalf("alice's pull: %s", r)
	}
	assertNamespaceHolds(t, d, "alice", ref, app.manifest, app.blobs()...)
	bob.mustFail(t, d.mnt, "Permission denied", "ls ns/alice/images")
	if r := bob.nsfs(t, d, "-n", "alice", "images", "ls"); r.code != 1 || !strings.Contains(r.stderr, `namespace "alice"`) {
		t.Errorf("bob lists alice's images: want exit 1 naming the namespace, got %s", r)
	}

	// bob's quota is smaller than the image: EDQUOT, nothing downloaded,
	// ns/bob as it was.
	bob.mustSh(t, d.mnt, "umask 077 && mkdir ns/bob")
	mustRun(t, d.mnt, "setfattr", "-n", "trusted.nsfs.quota", "-v", "256K", "ns/bob")
	before := tenantState(t, d)
	from := reg.mark(t)
	r := bob.nsfs(t, d, "-n", "bob", "pull", "--plain-http", "--quiet", ref)
	if r.code != 1 || strings.Count(r.stderr, "\n") != 1 || !strings.Contains(r.stderr, `namespace "bob": disk quota exceeded`) ||
		!strings.Contains(r.stderr, fmt.Sprintf("more than its quota of 256.0 KiB (262144 bytes) leaves")) {
		t.Errorf("bob's pull over his quota: want one line saying which namespace and by how much, got %s", r)
	}
	t.Logf("%s: %s", r.cmdline, strings.TrimSpace(r.stderr))
	reg.assertBlobGETs(t, "bob's pull over his quota", from)
	assertTenantUnchanged(t, d, "bob's pull over his quota", before)

	// Raised by root, the pull succeeds, still without downloading.
	mustRun(t, d.mnt, "setfattr", "-n", "trusted.nsfs.quota", "-v", "10M", "ns/bob")
	from = reg.mark(t)
	if r := bob.nsfs(t, d, "-n", "bob", "pull", "--plain-http", "--quiet", ref); r.code != 0 || r.stderr != "" {
		t.Fatalf("bob's pull under the raised quota: %s", r)
	}
	reg.assertBlobGETs(t, "bob's pull of what alice has", from)
	assertNamespaceHolds(t, d, "bob", ref, app.manifest, app.blobs()...)
	alice.mustFail(t, d.mnt, "Permission denied", "ls ns/bob/images")

	// df ns/*: each one's use; namespaces ls: they share everything.
	assertOutput(t, "df ns/bob", dfBytes(t, d.mnt, "ns/bob"), fmt.Sprintf("%d %d %d", 10<<20, roundUp(size), 10<<20-roundUp(size)))
	if got := strings.Fields(dfBytes(t, d.mnt, "ns/alice")); got[1] != strconv.FormatInt(roundUp(size), 10) {
		t.Errorf("df ns/alice: used %s, want %d", got[1], roundUp(size))
	}
	out := mustPullCLI(t, d, nil, "namespaces", "ls")
	for _, want := range []string{
		fmt.Sprintf("alice   %s %s 0.0 B -", padRight(alice.name, len(bob.name)), progressBytes(size)),
		fmt.Sprintf("bob     %s %s 0.0 B 10.0 MiB", bob.name, progressBytes(size)),
	} {
		if !strings.Contains(strings.Join(strings.Fields(out), " "), strings.Join(strings.Fields(want), " ")) {
			t.Errorf("nsfs namespaces ls: want a row %q, got\n%s", want, out)
		}
	}
	// Once alice removes hers, bob alone holds the image.
	alice.mustSh(t, d.mnt, "rm -rf ns/alice")
	out = mustPullCLI(t, d, nil, "namespaces", "ls")
	if want := fmt.Sprintf("bob %s %s %s 10.0 MiB", bob.name, progressBytes(size), progressBytes(size)); !strings.Contains(strings.Join(strings.Fields(out), " "), want) {
		t.Errorf("nsfs namespaces ls after alice left: want a row %q, got\n%s", want, out)
	}
}

func padRight(s string, n int) string { return s + strings.Repeat(" ", max(0, n-len(s))) }

// A pull that passes the quota part-way keeps none of the blobs it wrote.
func TestTenantPullOverQuotaKeepsNothing(t *testing.T) {
	reg := startRegistry(t)
	d := tenantMount(t)
	app := imageWithLayers(1321, "amd64", nil, 100<<10, 200<<10)
	pushImage(t, reg.addr+"/test/app", "v1", app, nil)
	ref := reg.addr + "/test/app:v1"
	mustRun(t, d.mnt, "mkdir", "ns/q")
	// The ref's first directory is there already: it stays, and the one
	// the pull made below it (test/) goes.
	mustRun(t, d.mnt, "mkdir", "ns/q/images/"+reg.addr)
	mustPullCLI(t, d, nil, "namespaces", "quota", "q", "200K")
	before := tenantState(t, d)
	r := failPullCLI(t, d, []string{"NSFS_NAMESPACE=q"}, `namespace "q": disk quota exceeded`, "pull", "--plain-http", "--quiet", ref)
	if !strings.Contains(r.stderr, fmt.Sprintf("the image needs %s", progressBytes(blobsSize(app.blobs()...)))) {
		t.Errorf("pull over the quota: want the image's size in %q", r.stderr)
	}
	assertTenantUnchanged(t, d, "a pull over the quota", before)
}
