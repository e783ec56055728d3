package integration

import (
	"path/filepath"
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
