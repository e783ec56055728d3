package integration

// Rules an attacker-minded review asked for, as a user meets them: the
// errno of each refusal, the message the daemon logs, and a store left as
// it was.
//
//   - the labels of one object are bounded (ENOSPC), so that listxattr
//     always fits in 64 KiB and `nsfs namespaces ls` keeps working;
//   - setxattr with XATTR_CREATE and an empty value is EINVAL;
//   - a manifest with a duplicate JSON key is EINVAL;
//   - a ref with a control character is EINVAL, and refs with other
//     unusual characters are listed shell-quoted;
//   - under isolated sharing, a stat answers from an index, and a blob only
//     private namespaces hold looks exactly like an absent one.

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"
)

// createFile opens path with O_CREAT (close-on-exec) and returns the fd.
func createFile(t *testing.T, path string) (int, error) {
	t.Helper()
	return unix.Open(path, unix.O_CREAT|unix.O_WRONLY|unix.O_TRUNC|unix.O_CLOEXEC, 0o644)
}

// writeImageFile writes data as a new file through open, write, close.
func writeImageFile(t *testing.T, path string, data []byte) error {
	t.Helper()
	fd, err := createFile(t, path)
	if err != nil {
		return err
	}
	if _, err := unix.Write(fd, data); err != nil {
		unix.Close(fd)
		return err
	}
	return unix.Close(fd)
}

// fillLabels sets 16 labels of 4096 bytes each as LabelSize counts them
// (key, value, and "user." and a NUL): exactly the 65536 one object may
// have.
func fillLabels(t *testing.T, p string) {
	t.Helper()
	for i := 0; i < 16; i++ {
		key := fmt.Sprintf("user.k%02d", i) // label k00: 3 bytes
		if err := unix.Setxattr(p, key, bytes.Repeat([]byte("v"), 4096-3-6), 0); err != nil {
			t.Fatalf("setxattr %s of %s: %v", key, p, err)
		}
	}
}

func TestRulesLabelsOfOneObjectAreBounded(t *testing.T) {
	t.Parallel()
	d := startNsfs(t)
	m := d.mnt
	for kind, rel := range labelledObjects(t, d) {
		t.Run(kind, func(t *testing.T) {
			p := d.path(rel)
			fillLabels(t, p)
			before := d.state(t)
			err := unix.Setxattr(p, "user.x", []byte("1"), 0)
			assertErrno(t, "setxattr of one more label on a full "+kind, err, unix.ENOSPC)
			err = unix.Setxattr(p, "user.k00", bytes.Repeat([]byte("v"), 4096-3-6+1), unix.XATTR_REPLACE)
			assertErrno(t, "setxattr of a longer value on a full "+kind, err, unix.ENOSPC)
			mustFail(t, m, "No space left on device", "setfattr", "-n", "user.x", "-v", "1", rel)
			d.assertUnchanged(t, "labels refused on a full "+kind, before)
			d.waitForLog(t, "its labels would take 65544 bytes, over the limit of 65536")
			// What fits: the same value again, a shorter one, a removal.
			mustRun(t, m, "setfattr", "-n", "user.k00", "-v", "short", rel)
			mustRun(t, m, "setfattr", "-n", "user.x", "-v", "1", rel)
			mustRun(t, m, "setfattr", "-x", "user.k01", rel)
		})
	}

	// As many labels as fit, with the longest keys: listxattr's answer is
	// just under 64 KiB, and everything that lists labels works.
	mustRun(t, m, "mkdir", "ns/many")
	n := 0
	for ; n < 20000; n++ {
		key := fmt.Sprintf("user.%0250d", n) // XATTR_NAME_MAX: 255
		err := unix.Setxattr(d.path("ns/many"), key, []byte("v"), 0)
		if err == unix.ENOSPC {
			break
		}
		if err != nil {
			t.Fatalf("setxattr of label %d: %v", n, err)
		}
	}
	if want := 65536 / (250 + 1 + 6); n != want {
		t.Errorf("%d labels of 257 bytes fit, want %d", n, want)
	}
	size, err := unix.Listxattr(d.path("ns/many"), nil)
	if err != nil || size > 65536 || size != n*(5+250+1) {
		t.Errorf("listxattr of the full namespace: %d bytes, %v; want %d", size, err, n*(5+250+1))
	}
	if out := d.cli(t, "namespaces", "ls"); !strings.Contains(out, "many ") {
		t.Errorf("nsfs namespaces ls does not list the full namespace:\n%.300s", out)
	}
	mustRun(t, m, "getfattr", "-d", "ns/many")
}

// Labels set in bulk follow the rule: an image being created (its labels
// wait for the commit), and the CLI's namespaces create and label, which
// refuse before anything changes.
func TestRulesLabelsSetInBulkAreBounded(t *testing.T) {
	t.Parallel()
	d := startNsfs(t)
	m := d.mnt
	img := newImage(501, "amd64", 900)
	d.putImage(t, "default", "base", img)

	// An image being created: open, labels, then the bytes and close.
	p := d.path(imagePath("default", "pending"))
	fd, err := createFile(t, p)
	if err != nil {
		t.Fatal(err)
	}
	fillLabels(t, p)
	err = unix.Setxattr(p, "user.x", []byte("1"), 0)
	assertErrno(t, "setxattr of one more label on an image being created", err, unix.ENOSPC)
	if _, err := unix.Write(fd, img.manifest.data); err != nil {
		t.Fatal(err)
	}
	if err := unix.Close(fd); err != nil {
		t.Fatalf("close of the image being created, with labels at the limit: %v", err)
	}
	if labels, err := xattrs(p); err != nil || len(labels) != 16 || labels["user.x"] != "" {
		t.Errorf("the committed image's labels: %d, %v; want the 16 that fit", len(labels), err)
	}

	// nsfs namespaces create NAME k=v...: over the limit, no namespace.
	var args []string
	for i := 0; i < 17; i++ {
		args = append(args, fmt.Sprintf("k%02d=%s", i, strings.Repeat("v", 4096-3-6)))
	}
	before := d.state(t)
	r := runCLI(t, nil, append([]string{"--mount", m, "namespaces", "create", "big"}, args...)...)
	if want := `nsfs: namespace "big": its labels would take 69632 bytes, over the limit of 65536`; r.code != 1 || !strings.HasPrefix(r.stderr, want) {
		t.Errorf("namespaces create with labels over the limit: %s, want exit 1 and %q", r, want)
	}
	d.assertUnchanged(t, "namespaces create with labels over the limit", before)
	d.cli(t, append([]string{"namespaces", "create", "big"}, args[:16]...)...)

	// nsfs namespaces label: the labels there count, removals pass.
	before = d.state(t)
	r = runCLI(t, nil, "--mount", m, "namespaces", "label", "big", "x=1", "y=2")
	if want := `nsfs: namespace "big": its labels would take 65552 bytes, over the limit of 65536`; r.code != 1 || !strings.HasPrefix(r.stderr, want) {
		t.Errorf("namespaces label over the limit: %s, want exit 1 and %q", r, want)
	}
	d.assertUnchanged(t, "namespaces label over the limit", before)
	d.cli(t, "namespaces", "label", "big", "k00=", "x=1", "y=2")
	if labels, err := xattrs(d.path("ns/big")); err != nil || len(labels) != 17 || labels["user.x"] != "1" {
		t.Errorf("labels after a label command that fits: %d, %v", len(labels), err)
	}
}

func TestRulesXattrCreateWithAnEmptyValue(t *testing.T) {
	t.Parallel()
	d := startNsfs(t)
	objects := labelledObjects(t, d)
	// An image being created keeps its labels in memory until the commit:
	// the same rule there.
	pending := imagePath("default", "pending")
	fd, err := createFile(t, d.path(pending))
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	objects["image being created"] = pending
	for kind, rel := range objects {
		t.Run(kind, func(t *testing.T) {
			p := d.path(rel)
			if err := unix.Setxattr(p, "user.there", []byte("1"), 0); err != nil {
				t.Fatal(err)
			}
			before := d.state(t)
			err := unix.Setxattr(p, "user.new", nil, unix.XATTR_CREATE)
			assertErrno(t, "setxattr XATTR_CREATE of an absent label with an empty value", err, unix.EINVAL)
			err = unix.Setxattr(p, "user.there", []byte{}, unix.XATTR_CREATE)
			assertErrno(t, "setxattr XATTR_CREATE of a present label with an empty value", err, unix.EINVAL)
			// XATTR_REPLACE with an empty value removes, so an absent
			// label is ENODATA, as setfattr -x answers.
			err = unix.Setxattr(p, "user.new", nil, unix.XATTR_REPLACE)
			assertErrno(t, "setxattr XATTR_REPLACE of an absent label with an empty value", err, unix.ENODATA)
			d.assertUnchanged(t, "setxattr with an empty value refused", before)
			if err := unix.Setxattr(p, "user.there", nil, unix.XATTR_REPLACE); err != nil {
				t.Errorf("setxattr XATTR_REPLACE of a present label with an empty value: %v", err)
			}
			_, err = unix.Getxattr(p, "user.there", make([]byte, 8))
			assertErrno(t, "getxattr of the label XATTR_REPLACE emptied", err, unix.ENODATA)
		})
	}
	d.waitForLog(t, "an empty value removes a label; XATTR_CREATE with an empty value would create nothing")
}

func TestRulesManifestWithADuplicateKey(t *testing.T) {
	t.Parallel()
	d := startNsfs(t)
	m := d.mnt
	img := newImage(502, "amd64", 700, 800)
	d.putImage(t, "default", "base", img)
	other := img.layers[0].descriptor()
	// The manifests are indented JSON ("key": value).
	replace := func(old, new string) []byte {
		return bytes.Replace(img.manifest.data, []byte(old), []byte(new), 1)
	}
	cases := map[string][]byte{
		"two configs": replace(`"config": `, `"config": `+string(mustJSON(other))+`, "config": `),
		"two digests in a layer": replace(`"digest": "`+img.layers[1].digest()+`"`,
			`"digest": "`+img.layers[0].digest()+`", "digest": "`+img.layers[1].digest()+`"`),
		"a case variant of config": replace(`"config": `, `"Config": `),
	}
	for name, data := range cases {
		if bytes.Equal(data, img.manifest.data) {
			t.Fatalf("%s: the test's manifest was not changed", name)
		}
		before := d.state(t)
		err := writeImageFile(t, d.path(imagePath("default", "bad")), data)
		assertErrno(t, name, err, syscall.EINVAL)
		d.assertUnchanged(t, name, before)
		mustFail(t, m, "Invalid argument", "cp", writeTemp(t, "bad.json", data), imagePath("default", "base"))
		d.assertUnchanged(t, name+" over an existing image", before)
	}
	d.waitForLog(t, `duplicate key "config" at the top level`)
	d.waitForLog(t, `duplicate key "digest" in .layers[1]`)
	d.waitForLog(t, `key "Config" at the top level differs from "config" only in case`)
}

func TestRulesRefsWithControlCharacters(t *testing.T) {
	t.Parallel()
	d := startNsfs(t)
	m := d.mnt
	img := newImage(503, "amd64", 600)
	d.putImage(t, "default", "app", img)
	images := d.path("ns", "default", "images")
	before := d.state(t)
	for _, name := range []string{"a\nb", "app\x1b[2J", "tab\there", "del\x7f", "cr\r"} {
		_, err := createFile(t, filepath.Join(images, name))
		assertErrno(t, fmt.Sprintf("create of %q", name), err, unix.EINVAL)
		err = unix.Mkdir(filepath.Join(images, name), 0o755)
		assertErrno(t, fmt.Sprintf("mkdir of %q", name), err, unix.EINVAL)
		err = unix.Rename(filepath.Join(images, "app"), filepath.Join(images, name))
		assertErrno(t, fmt.Sprintf("rename to %q", name), err, unix.EINVAL)
		err = unix.Link(filepath.Join(images, "app"), filepath.Join(images, name))
		assertErrno(t, fmt.Sprintf("link to %q", name), err, unix.EINVAL)
	}
	if r := runCLI(t, nil, "--mount", m, "images", "tag", "app", "app\nv2"); r.code != 1 {
		t.Errorf("images tag to a ref with a newline: %s, want exit 1", r)
	}
	d.assertUnchanged(t, "refs with control characters", before)

	// Printable oddities are valid refs; the listing quotes them as GNU ls.
	for _, ref := range []string{"app: v1 ", "it's", `back\slash`, `say "hi"`} {
		d.putManifest(t, "default", ref, img.manifest.data)
	}
	mustRun(t, m, "setfattr", "-n", "user.note", "-v", "a b", imagePath("default", "it's"))
	assertOutput(t, "ls", mustRun(t, m, "ls", "--quoting-style=shell-escape", "ns/default/images"),
		lines("app", "'app: v1 '", `'back\slash'`, `"it's"`, `'say "hi"'`))
	quoted := []string{"app", "'app: v1 '", `'back\slash'`, `'it'\''s'`, `'say "hi"'`}
	assertOutput(t, "nsfs images ls -q", d.cli(t, "images", "ls", "-q"), lines(quoted...))
	rows := [][]string{{"REF", "TYPE", "DIGEST", "SIZE", "PLATFORMS", "LABELS"}}
	size := cliKiB(t, len(img.manifest.data)+len(img.config.data)+600)
	for _, ref := range quoted {
		labels := "-"
		if ref == `'it'\''s'` {
			labels = "note='a b'"
		}
		rows = append(rows, []string{ref, mediaTypeOCIManifest, img.manifest.digest(), size, "linux/amd64", labels})
	}
	assertOutput(t, "nsfs images ls", d.cli(t, "images", "ls"), cliTable(true, rows...))
	// What the listing prints, a shell reads back as the ref.
	for _, ref := range quoted[1:] {
		if out := mustRun(t, m, "sh", "-c", "cat ns/default/images/"+ref); out != string(img.manifest.data) {
			t.Errorf("cat ns/default/images/%s = %q", ref, out)
		}
	}
	// The daemon's log names a refused ref without its control bytes.
	if logs := d.logs.String(); strings.Contains(logs, "\x1b") || strings.Contains(logs, "images/a\nb") {
		t.Errorf("the daemon logged a raw control character:\n%q", logs)
	}
}

// Under isolated sharing a blob that only private namespaces hold answers
// like an absent one, however many hold it; a namespace labelled
// shareable lends it at once, and the index that says so survives a
// remount and stays consistent for fsck.
func TestRulesIsolatedVisibilityFromTheIndex(t *testing.T) {
	t.Parallel()
	d := startNsfs(t, isolated())
	m := d.mnt
	data := randomBytes(504, 3000)
	b := blob{data: data}
	const holders = 40
	var dirs []string
	for i := 0; i < holders; i++ {
		dirs = append(dirs, fmt.Sprintf("ns/h%02d", i))
	}
	mustRun(t, m, "mkdir", append(dirs, "ns/tenant")...)
	for i := 0; i < holders; i++ {
		d.putBlob(t, fmt.Sprintf("h%02d", i), b)
	}
	absent := blob{data: []byte("nobody holds this")}
	before := d.state(t)
	for _, x := range []blob{b, absent} {
		_, err := os.Stat(d.path(blobPath("tenant", x.hex())))
		assertErrno(t, "stat in tenant of a blob it cannot see", err, unix.ENOENT)
		_, err = os.ReadFile(d.path(blobPath("tenant", x.hex())))
		assertErrno(t, "read in tenant of a blob it cannot see", err, unix.ENOENT)
	}
	d.assertUnchanged(t, "stats of invisible blobs", before)

	mustRun(t, m, "setfattr", "-n", "user.containerd.io/namespace.shareable", "-v", "true", "ns/h17")
	assertOutput(t, "stat in tenant once a holder is shareable", mustRun(t, m, "stat", "-c", "%s", blobPath("tenant", b.hex())), "3000\n")
	mustRun(t, m, "setfattr", "-n", "user.containerd.io/namespace.shareable", "-v", "false", "ns/h17")
	mustFail(t, m, "No such file or directory", "stat", blobPath("tenant", b.hex()))
	mustRun(t, m, "setfattr", "-n", "user.containerd.io/namespace.shareable", "-v", "true", "ns/h03")
	d = d.remount(t)
	m = d.mnt
	assertOutput(t, "stat in tenant after a remount", mustRun(t, m, "stat", "-c", "%s", blobPath("tenant", b.hex())), "3000\n")
	mustRun(t, m, "rm", blobPath("h03", b.hex()))
	mustFail(t, m, "No such file or directory", "stat", blobPath("tenant", b.hex()))
	// A shareable namespace that drops the blob and goes takes it along.
	mustRun(t, m, "setfattr", "-n", "user.containerd.io/namespace.shareable", "-v", "true", "ns/h17")
	mustRun(t, m, "stat", blobPath("tenant", b.hex()))
	mustRun(t, m, "rm", blobPath("h17", b.hex()))
	mustRun(t, m, "rmdir", "ns/h17")
	mustFail(t, m, "No such file or directory", "stat", blobPath("tenant", b.hex()))
	if problems := checkStoreInvariants(d.mnt, d.root); len(problems) > 0 {
		t.Errorf("store invariants:\n%s", strings.Join(problems, "\n"))
	}
	d.stop(t)
	mustRun(t, "/", nsfsBin, "fsck", "--root", d.root)
}

// Labels over the limit in a store an nsfs from before it wrote: listxattr
// of that namespace fails with E2BIG, but `nsfs namespaces ls` still lists
// every namespace and says which it cannot show; nothing may grow the
// labels, and removals bring them under the limit.
func TestRulesLabelsOverTheLimitFromBefore(t *testing.T) {
	t.Parallel()
	d := startNsfs(t)
	mustRun(t, d.mnt, "mkdir", "ns/old", "ns/zed")
	d.stop(t)
	// As an older nsfs let it be written: 300 labels of 257 bytes.
	db, err := bolt.Open(filepath.Join(d.root, "meta.db"), 0o600, &bolt.Options{Timeout: exitTimeout})
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		// The namespace's record; a label is its key "labels/<key>"
		// (metadata/doc.go).
		nsb := tx.Bucket([]byte("ns/old"))
		for i := 0; i < 300; i++ {
			if err := nsb.Put([]byte(fmt.Sprintf("labels/%0250d", i)), []byte("v")); err != nil {
				return err
			}
		}
		return nil
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	d = startNsfs(t, withStore(d.root, d.mnt))
	m := d.mnt

	_, err = unix.Listxattr(d.path("ns/old"), make([]byte, 65536))
	assertErrno(t, "listxattr of labels over 64 KiB", err, unix.E2BIG)
	r := runCLI(t, nil, "--mount", m, "namespaces", "ls")
	if r.code != 0 || !strings.Contains(r.stdout, "zed ") || !strings.Contains(strings.Join(strings.Fields(r.stdout), " "), "old root 0.0 B 0.0 B - ?") {
		t.Errorf("namespaces ls with one namespace over the limit: %s, want every namespace listed", r)
	}
	if want := `nsfs: namespace "old": its labels are over 65536 bytes and cannot be listed`; !strings.HasPrefix(r.stderr, want) {
		t.Errorf("namespaces ls stderr %q, want %q", r.stderr, want)
	}
	err = unix.Setxattr(d.path("ns/old"), "user.new", []byte("1"), 0)
	assertErrno(t, "setxattr of a new label over the limit", err, unix.ENOSPC)
	// 300-255 = 45 removals bring the labels to 255*257 bytes.
	var removals []string
	for i := 0; i < 45; i++ {
		removals = append(removals, fmt.Sprintf("%0250d=", i))
	}
	d.cli(t, append([]string{"namespaces", "label", "old"}, removals...)...)
	if size, err := unix.Listxattr(d.path("ns/old"), nil); err != nil || size != 255*(5+250+1) {
		t.Errorf("listxattr after the removals: %d, %v", size, err)
	}
	d.cli(t, "namespaces", "ls")
}
