package integration

import (
	"path/filepath"
	"strings"
	"testing"
)

// Times as a filesystem keeps them, seen with stat: a directory's mtime
// and ctime move when an entry is added, removed or renamed in it, and
// only then; a label moves ctime only; utimes (touch) is kept; and all of
// it is the same after a remount.
func TestTimesMoveAsOnAFilesystem(t *testing.T) {
	t.Parallel()
	d := startNsfs(t)
	m := d.mnt
	img := newImage(131, "amd64", 200)
	// times is "mtime|ctime" of each path, as stat prints them.
	times := func(paths ...string) map[string]string {
		t.Helper()
		out := mustRun(t, m, "stat", append([]string{"-c", "%n %y|%z"}, paths...)...)
		got := map[string]string{}
		for _, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
			name, ts, _ := strings.Cut(line, " ")
			got[name] = ts
		}
		return got
	}
	const (
		mtimeAndCtime = "mtime and ctime"
		ctimeOnly     = "ctime only"
		nothing       = "nothing"
	)
	// step runs script and checks what moved in each path.
	step := func(script string, want map[string]string) {
		t.Helper()
		paths := make([]string, 0, len(want))
		for p := range want {
			paths = append(paths, p)
		}
		before := times(paths...)
		mustSh(t, m, script)
		after := times(paths...)
		for p, w := range want {
			bm, bc, _ := strings.Cut(before[p], "|")
			am, ac, _ := strings.Cut(after[p], "|")
			got := nothing
			switch {
			case am != bm && ac != bc:
				got = mtimeAndCtime
			case ac != bc:
				got = ctimeOnly
			case am != bm:
				got = "mtime only"
			}
			if got != w {
				t.Errorf("%s: %s changed %s (%s → %s), want %s", script, p, got, before[p], after[p], w)
			}
		}
	}
	blobs := "ns/foo/blobs/sha256"
	images := "ns/foo/images"
	library := images + "/docker.io/library"

	step("mkdir ns/foo", map[string]string{"ns": mtimeAndCtime, "ns/default": nothing})
	step("cp "+writeTemp(t, "config", img.config.data)+" "+blobPath("foo", img.config.hex()),
		map[string]string{blobs: mtimeAndCtime, "ns/foo": nothing, "ns": nothing})
	d.putBlob(t, "foo", img.layers[0])
	step("cp "+writeTemp(t, "manifest", img.manifest.data)+" "+imagePath("foo", "app:v1"),
		map[string]string{images: mtimeAndCtime, blobs: nothing, "ns/foo": nothing}) // what it claims is no write in blobs/sha256
	step("mkdir -p "+library, map[string]string{images: mtimeAndCtime, "ns/foo": nothing})
	step("cp "+imagePath("foo", "app:v1")+" "+library+"/app:v1",
		map[string]string{library: mtimeAndCtime, images + "/docker.io": nothing, images: nothing, blobs: nothing})
	step("mv "+imagePath("foo", "app:v1")+" "+library+"/app:v2",
		map[string]string{library: mtimeAndCtime, images: mtimeAndCtime})
	step("setfattr -n user.k -v v "+library+"/app:v2", map[string]string{library + "/app:v2": ctimeOnly, library: nothing})
	step("setfattr -n user.k -v v ns/foo", map[string]string{"ns/foo": ctimeOnly, "ns": nothing, images: nothing})
	step("setfattr -n user.k -v v "+blobPath("foo", img.config.hex()), map[string]string{blobPath("foo", img.config.hex()): ctimeOnly, blobs: nothing})
	step("rm "+library+"/app:v1", map[string]string{library: mtimeAndCtime, images: nothing, blobs: nothing})
	step("cp "+writeTemp(t, "loose", []byte("loose"))+" "+blobPath("foo", sha256Hex([]byte("loose"))), map[string]string{blobs: mtimeAndCtime, images: nothing})
	step("rm "+blobPath("foo", sha256Hex([]byte("loose"))), map[string]string{blobs: mtimeAndCtime, images: nothing})
	step("touch -d @1577836800.5 "+library+"/app:v2", map[string]string{library + "/app:v2": mtimeAndCtime, library: nothing})
	step("touch -d @1577836800 "+library+" "+blobPath("foo", img.config.hex()), map[string]string{library: mtimeAndCtime, blobs: nothing})
	assertOutput(t, "mtimes set by touch", mustRun(t, m, "stat", "-c", "%.1Y", library+"/app:v2", library, blobPath("foo", img.config.hex())),
		lines("1577836800.5", "1577836800.0", "1577836800.0"))
	step("rmdir ns/default/images/nothing 2>/dev/null; mkdir ns/bar && rmdir ns/bar", map[string]string{"ns": mtimeAndCtime, "ns/foo": nothing})

	// A remount shows the same times: they are the store's.
	all := []string{"ns", "ns/foo", images, images + "/docker.io", library, library + "/app:v2", "ns/foo/blobs", blobs, blobPath("foo", img.config.hex())}
	before := times(all...)
	d = d.remount(t)
	m = d.mnt
	after := times(all...)
	for _, p := range all {
		if before[p] != after[p] {
			t.Errorf("%s after a remount: %s, was %s", p, after[p], before[p])
		}
	}
}

// rsync -a out of a namespace and back into a new one, each run twice:
// the second run finds every time as the first left it and writes
// nothing (rsync -i prints nothing, no image is committed again).
func TestRsyncTwiceWritesNothing(t *testing.T) {
	t.Parallel()
	d := startNsfs(t)
	m := d.mnt
	d.putImage(t, "default", "docker.io/library/app:v1", newImage(132, "amd64", 300, 400))
	mustRun(t, m, "setfattr", "-n", "user.team", "-v", "blue", imagePath("default", "docker.io/library/app:v1"))
	mustRun(t, m, "setfattr", "-n", "user.owner", "-v", "ops", "ns/default")
	backup := filepath.Join(t.TempDir(), "backup")

	mustRun(t, m, "rsync", "-aX", "ns/default/", backup+"/")
	// A remount between the runs: what the second run sees is the store's,
	// not what the kernel kept of the first.
	d = d.remount(t)
	m = d.mnt
	assertOutput(t, "rsync -aiX out of nsfs, the second time", mustRun(t, m, "rsync", "-aiX", "ns/default/", backup+"/"), "")

	mustRun(t, m, "mkdir", "ns/new")
	mustRun(t, m, "rsync", "-aX", backup+"/", "ns/new/")
	d = d.remount(t)
	m = d.mnt
	before := d.state(t)
	commits := strings.Count(d.logs.String(), "commit ")
	assertOutput(t, "rsync -aiX into nsfs, the second time", mustRun(t, m, "rsync", "-aiX", backup+"/", "ns/new/"), "")
	d.assertUnchanged(t, "the second rsync into nsfs", before)
	if n := strings.Count(d.logs.String(), "commit "); n != commits {
		t.Errorf("the second rsync logged %d commits", n-commits)
	}
	assertOutput(t, "sha256sum of the restored image", mustRun(t, m, "sha256sum", imagePath("new", "docker.io/library/app:v1")),
		strings.Replace(mustRun(t, m, "sha256sum", imagePath("default", "docker.io/library/app:v1")), "ns/default/", "ns/new/", 1))
	assertOutput(t, "labels of the restored image", mustRun(t, m, "getfattr", "-d", "--absolute-names", "-n", "user.team", imagePath("new", "docker.io/library/app:v1")),
		"# file: "+imagePath("new", "docker.io/library/app:v1")+"\nuser.team=\"blue\"\n\n")
}
