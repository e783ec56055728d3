package integration

import (
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// assertMissing checks that rel does not exist (ENOENT from lstat).
func assertMissing(t *testing.T, d *daemon, rel string) {
	t.Helper()
	var st unix.Stat_t
	assertErrno(t, "lstat "+rel, unix.Lstat(d.path(rel), &st), unix.ENOENT)
}

// assertSize checks that rel exists, a regular file of size bytes.
func assertSize(t *testing.T, d *daemon, rel string, size int) {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(d.path(rel), &st); err != nil {
		t.Errorf("lstat %s: %v, want a file of %d bytes", rel, err, size)
		return
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG || st.Size != int64(size) {
		t.Errorf("lstat %s: mode %o size %d, want a regular file of %d bytes", rel, st.Mode, st.Size, size)
	}
}

// The kernel remembers that a namespace or image name is missing (a
// repeated stat sends nothing to the daemon), and every operation that
// makes the name exist shows it the moment it returns; a blob's missing
// name is never remembered, since it can appear through another
// namespace.
func TestMissingNamesAreCachedAndAppearAtOnce(t *testing.T) {
	t.Parallel()
	d := startNsfs(t, withFlags("--debug"))
	m := d.mnt
	img := newImage(113, "amd64", 300)
	other := newImage(114, "amd64", 500)
	d.putImage(t, "default", "app:v1", img)
	d.putImage(t, "default", "other:v1", other)

	t.Run("a repeated miss stays in the kernel", func(t *testing.T) {
		for _, rel := range []string{"ns/nope", imagePath("default", "nope"), imagePath("default", "lib/nope")} {
			assertMissing(t, d, rel)
			ops := fuseRequests(t, d, func() {
				for i := 0; i < 20; i++ {
					assertMissing(t, d, rel)
				}
			})
			lookups := 0
			for _, op := range ops {
				if strings.HasPrefix(op, "LOOKUP") {
					lookups++
				}
			}
			// At most one, should the 1 s have passed meanwhile.
			if lookups > 1 {
				t.Errorf("20 stats of missing %s sent %d lookups: %v", rel, lookups, ops)
			}
		}
	})

	t.Run("namespace", func(t *testing.T) {
		assertMissing(t, d, "ns/neg")
		mustRun(t, m, "mkdir", "ns/neg")
		if fi, err := os.Lstat(d.path("ns/neg")); err != nil || !fi.IsDir() {
			t.Errorf("after mkdir, ns/neg: %v, %v", fi, err)
		}
		mustRun(t, m, "rmdir", "ns/neg")
		assertMissing(t, d, "ns/neg")
		mustRun(t, m, "mkdir", "ns/neg")
		if _, err := os.Lstat(d.path("ns/neg/images")); err != nil {
			t.Errorf("after mkdir again, ns/neg/images: %v", err)
		}
	})

	t.Run("image created, renamed onto, linked, removed", func(t *testing.T) {
		for _, name := range []string{"cp:v1", "mv:v1", "ln:v1", "dir", "dir/x"} {
			assertMissing(t, d, imagePath("default", name))
		}
		d.putManifest(t, "default", "cp:v1", img.manifest.data)
		assertSize(t, d, imagePath("default", "cp:v1"), len(img.manifest.data))

		mustRun(t, m, "mv", imagePath("default", "cp:v1"), imagePath("default", "mv:v1"))
		assertSize(t, d, imagePath("default", "mv:v1"), len(img.manifest.data))
		assertMissing(t, d, imagePath("default", "cp:v1"))

		mustRun(t, m, "ln", imagePath("default", "mv:v1"), imagePath("default", "ln:v1"))
		assertSize(t, d, imagePath("default", "ln:v1"), len(img.manifest.data))

		mustRun(t, m, "mkdir", imagePath("default", "dir"))
		mustRun(t, m, "cp", imagePath("default", "ln:v1"), imagePath("default", "dir/x"))
		assertSize(t, d, imagePath("default", "dir/x"), len(img.manifest.data))

		// Replaced by other bytes: the new size at once.
		mustRun(t, m, "cp", imagePath("default", "other:v1"), imagePath("default", "ln:v1"))
		assertSize(t, d, imagePath("default", "ln:v1"), len(other.manifest.data))

		mustRun(t, m, "rm", imagePath("default", "ln:v1"), imagePath("default", "mv:v1"))
		assertMissing(t, d, imagePath("default", "ln:v1"))
		assertMissing(t, d, imagePath("default", "mv:v1"))
		d.putManifest(t, "default", "mv:v1", other.manifest.data)
		assertSize(t, d, imagePath("default", "mv:v1"), len(other.manifest.data))
	})

	t.Run("a failed create leaves the name missing", func(t *testing.T) {
		assertMissing(t, d, imagePath("default", "junk"))
		src := writeTemp(t, "junk.json", []byte("junk"))
		mustFail(t, m, "Invalid argument", "cp", src, imagePath("default", "junk"))
		assertMissing(t, d, imagePath("default", "junk"))
	})

	t.Run("a blob written in another namespace is seen at once", func(t *testing.T) {
		mustRun(t, m, "mkdir", "ns/negblob")
		fresh := newImage(115, "amd64", 700)
		b := fresh.layers[0]
		assertMissing(t, d, blobPath("negblob", b.hex()))
		assertMissing(t, d, blobPath("negblob", b.hex()))
		d.putBlob(t, "default", b)
		assertSize(t, d, blobPath("negblob", b.hex()), len(b.data))
	})
}
