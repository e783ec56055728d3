package integration

import (
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// A namespace copied out with cp -a restores with cp -a into an existing
// namespace of the same store: the blobs an image claimed when it was
// copied first are written again with their own bytes, which succeeds and
// changes nothing, and the labels cp sets on a blob before the close that
// commits it are the blob's.
func TestRestoreIntoExistingNamespace(t *testing.T) {
	t.Parallel()
	d := startNsfs(t)
	m := d.mnt
	img := newImage(1301, "amd64", 3000, 5000)
	d.putImage(t, "default", "app:v1", img)
	mustRun(t, m, "setfattr", "-n", "user.team", "-v", "infra", "ns/default")
	mustRun(t, m, "setfattr", "-n", "user.note", "-v", "base", blobPath("default", img.layers[0].hex()))
	mustRun(t, m, "setfattr", "-n", "user.stage", "-v", "prod", imagePath("default", "app:v1"))
	backup := filepath.Join(t.TempDir(), "backup")
	mustRun(t, m, "cp", "-a", "ns/default", backup)

	for _, restore := range []struct{ ns, tool string }{
		{"bycp", "cp -a " + backup + "/. ns/bycp/"},
	} {
		mustRun(t, m, "mkdir", filepath.Join("ns", restore.ns))
		if r := sh(t, m, restore.tool); r.code != 0 {
			t.Errorf("%s: %s", restore.tool, r)
			continue
		}
		want := lines(sortStrings([]string{img.config.hex(), img.layers[0].hex(), img.layers[1].hex(), img.manifest.hex()})...)
		assertOutput(t, restore.tool+": ls blobs/sha256", mustRun(t, m, "ls", blobPath(restore.ns, "")), want)
		assertOutput(t, restore.tool+": sha256sum of the image", mustRun(t, m, "sha256sum", imagePath(restore.ns, "app:v1")),
			img.manifest.hex()+"  "+imagePath(restore.ns, "app:v1")+"\n")
		for path, label := range map[string]string{
			filepath.Join("ns", restore.ns):           "user.team",
			blobPath(restore.ns, img.layers[0].hex()): "user.note",
			imagePath(restore.ns, "app:v1"):           "user.stage",
		} {
			want := map[string]string{"user.team": "infra", "user.note": "base", "user.stage": "prod"}[label]
			assertOutput(t, restore.tool+": "+label+" of "+path, mustRun(t, m, "getfattr", "--only-values", "-n", label, path), want)
		}
	}
}

// namespaceSnapshot is what a backup must bring back: every file below
// ns/<name> (images with the sha256 of their bytes, blobs by name), and
// every label, the namespace's included.
func namespaceSnapshot(t *testing.T, d *daemon, ns string) string {
	t.Helper()
	root := d.path("ns", ns)
	var out []string
	err := filepath.WalkDir(root, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		line := rel
		if e.Type().IsRegular() {
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			line += " sha256=" + sha256Hex(data)
		}
		out = append(out, line)
		labels, err := xattrs(p)
		if err != nil {
			return err
		}
		for _, k := range sortedKeys(labels) {
			out = append(out, fmt.Sprintf("  %s=%q", k, labels[k]))
		}
		return nil
	})
	if err != nil {
		t.Fatalf("snapshot of ns/%s: %v", ns, err)
	}
	return strings.Join(out, "\n")
}

// populateForBackup makes namespace ns with several images that share
// blobs, an index, and labels on the namespace, images and blobs.
func populateForBackup(t *testing.T, d *daemon, ns string) {
	t.Helper()
	m := d.mnt
	mustRun(t, m, "mkdir", filepath.Join("ns", ns))
	mustRun(t, m, "setfattr", "-n", "user.team", "-v", "infra", filepath.Join("ns", ns))
	amd := newImage(1501, "amd64", 3000, 5000)
	arm := newImage(1502, "arm64", 4000)
	d.putImage(t, ns, "docker.io/library/app:v1", amd)
	d.putImage(t, ns, "app-arm:v1", arm)
	d.putManifest(t, ns, "docker.io/library/app:multi", newIndex(amd, arm).data)
	mustRun(t, m, "cp", imagePath(ns, "docker.io/library/app:v1"), imagePath(ns, "docker.io/library/app:copy"))
	mustRun(t, m, "setfattr", "-n", "user.stage", "-v", "prod", imagePath(ns, "docker.io/library/app:v1"))
	mustRun(t, m, "setfattr", "-n", "user.containerd.io/gc.ref.content.l.0", "-v", "sha256:"+amd.layers[0].hex(), blobPath(ns, amd.manifest.hex()))
	mustRun(t, m, "setfattr", "-n", "user.note", "-v", "base layer", blobPath(ns, amd.layers[0].hex()))
}

// TestRestoreMatrix: a namespace backed up with cp -a, tar --xattrs and
// rsync -aX restores with cp -a and rsync -aX, their ordinary options,
// into a new namespace of the same store and of a fresh one, under shared
// and under isolated content: the same images, labels and blobs, each
// tool exits 0, and nsfs fsck finds both stores clean. A tar backup is
// extracted outside the mount first. The new namespace is made first
// (mkdir): cp -a cannot make it itself, and tar -x cannot write a blob
// the namespace can already see; docs/backups.md says why.
func TestRestoreMatrix(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("rsync"); err != nil && os.Getenv("CI") == "" {
		t.Skip("rsync is not installed")
	}
	for _, sharing := range []string{"shared", "isolated"} {
		t.Run(sharing, func(t *testing.T) {
			src := startNsfs(t, withFlags("--content-sharing", sharing))
			fresh := startNsfs(t, withFlags("--content-sharing", sharing))
			populateForBackup(t, src, "foo")
			want := namespaceSnapshot(t, src, "foo")
			tmp := t.TempDir()
			nsDir := src.path("ns", "foo")

			// The backups: two directories and a tar, extracted.
			backups := map[string]struct{ dir string }{}
			for _, b := range []struct{ name, script string }{
				{"cp", "cp -a " + nsDir + " " + tmp + "/cp"},
				{"rsync", "rsync -aX " + nsDir + "/ " + tmp + "/rsync/"},
				{"tar", "tar --xattrs -C " + nsDir + " -cf " + tmp + "/tar.tar ."},
			} {
				if r := sh(t, "/", b.script); r.code != 0 {
					t.Fatalf("backup with %s: %s", b.name, r)
				}
				dir := filepath.Join(tmp, b.name)
				if b.name == "tar" {
					mustSh(t, "/", "mkdir "+dir+" && tar --xattrs -C "+dir+" -xf "+dir+".tar")
				}
				backups[b.name] = struct{ dir string }{dir}
			}
			n := 0
			for _, target := range []struct {
				name string
				d    *daemon
			}{{"same store", src}, {"fresh store", fresh}} {
				for _, backup := range []string{"cp", "rsync", "tar"} {
					for _, tool := range []string{"cp", "rsync"} {
						n++
						ns := fmt.Sprintf("r%d", n)
						dst := target.d.path("ns", ns)
						mustRun(t, target.d.mnt, "mkdir", filepath.Join("ns", ns))
						script := map[string]string{
							"cp":    "cp -a " + backups[backup].dir + "/. " + dst + "/",
							"rsync": "rsync -aX " + backups[backup].dir + "/ " + dst + "/",
						}[tool]
						what := fmt.Sprintf("%s backup restored with %s into a %s (%s)", backup, tool, target.name, sharing)
						if r := sh(t, "/", script); r.code != 0 {
							t.Errorf("%s: %s", what, r)
							continue
						}
						if got := namespaceSnapshot(t, target.d, ns); got != want {
							t.Errorf("%s: the namespace differs:\n%s\nwant\n%s", what, got, want)
						}
					}
				}
			}
			for _, d := range []*daemon{src, fresh} {
				d.stop(t)
				if r := run(t, "/", nsfsBin, "fsck", "--root", d.root); r.code != 0 {
					t.Errorf("fsck after the restores: %s", r)
				}
			}
		})
	}
}
