package integration

import (
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// labelledObjects makes one of each object that carries labels and
// returns their paths relative to the mountpoint.
func labelledObjects(t *testing.T, d *daemon) map[string]string {
	t.Helper()
	mustRun(t, d.mnt, "mkdir", "ns/foo")
	img := newImage(31, "amd64", 2048)
	d.putImage(t, "default", "docker.io/library/app:v1", img)
	return map[string]string{
		"namespace": "ns/foo",
		"image":     imagePath("default", "docker.io/library/app:v1"),
		"blob":      blobPath("default", img.layers[0].hex()),
	}
}

func TestLabelsWithSetfattrGetfattr(t *testing.T) {
	t.Parallel()
	d := startNsfs(t)
	m := d.mnt
	for kind, p := range labelledObjects(t, d) {
		t.Run(kind, func(t *testing.T) {
			assertOutput(t, "getfattr -d of an unlabelled "+kind, mustRun(t, m, "getfattr", "-d", p), "")
			mustRun(t, m, "setfattr", "-n", "user.mylabel", "-v", "bar", p)
			mustRun(t, m, "setfattr", "-n", "user.containerd.io/gc.ref.content.l.0", "-v", "sha256:abc", p)
			mustRun(t, m, "setfattr", "-n", "user.a", "-v", "1", p)
			assertOutput(t, "getfattr -n user.mylabel", mustRun(t, m, "getfattr", "-n", "user.mylabel", p),
				"# file: "+p+"\nuser.mylabel=\"bar\"\n\n")
			assertOutput(t, "getfattr -d", mustRun(t, m, "getfattr", "-d", p),
				"# file: "+p+"\nuser.a=\"1\"\nuser.containerd.io/gc.ref.content.l.0=\"sha256:abc\"\nuser.mylabel=\"bar\"\n\n")
			assertOutput(t, "getfattr --only-values -n user.mylabel",
				mustRun(t, m, "getfattr", "--only-values", "-n", "user.mylabel", p), "bar")

			// Replace, then remove with -x and with an empty value.
			mustRun(t, m, "setfattr", "-n", "user.mylabel", "-v", "baz", p)
			assertOutput(t, "getfattr after replace", mustRun(t, m, "getfattr", "--only-values", "-n", "user.mylabel", p), "baz")
			mustRun(t, m, "setfattr", "-x", "user.a", p)
			mustRun(t, m, "setfattr", "-n", "user.containerd.io/gc.ref.content.l.0", "-v", "", p)
			assertOutput(t, "getfattr -d after removals", mustRun(t, m, "getfattr", "-d", p),
				"# file: "+p+"\nuser.mylabel=\"baz\"\n\n")
			mustFail(t, m, "No such attribute", "getfattr", "-n", "user.a", p)

			before := d.state(t)
			mustFail(t, m, "No such attribute", "setfattr", "-x", "user.absent", p)
			d.assertUnchanged(t, "setfattr -x of an absent label", before)
			// An empty value for an absent label removes nothing, quietly.
			mustRun(t, m, "setfattr", "-n", "user.absent", "-v", "", p)
			d.assertUnchanged(t, "setfattr -v '' of an absent label", before)
		})
	}
}

func TestLabelLimits(t *testing.T) {
	t.Parallel()
	d := startNsfs(t)
	m := d.mnt
	for kind, p := range labelledObjects(t, d) {
		t.Run(kind, func(t *testing.T) {
			// len(key)+len(value) = 4096 is the largest label.
			v4095 := strings.Repeat("v", 4095)
			mustRun(t, m, "setfattr", "-n", "user.k", "-v", v4095, p)
			assertOutput(t, "the 4096-byte label", mustRun(t, m, "getfattr", "--only-values", "-n", "user.k", p), v4095)
			key100 := strings.Repeat("k", 100)
			mustRun(t, m, "setfattr", "-n", "user."+key100, "-v", strings.Repeat("v", 3996), p)

			before := d.state(t)
			mustFail(t, m, "Argument list too long", "setfattr", "-n", "user.k", "-v", strings.Repeat("v", 4096), p)
			mustFail(t, m, "Argument list too long", "setfattr", "-n", "user."+key100, "-v", strings.Repeat("v", 3997), p)
			mustFail(t, m, "Argument list too long", "setfattr", "-n", "user.new", "-v", strings.Repeat("v", 4094), p)
			d.assertUnchanged(t, "labels over 4096 bytes", before)

			// An empty key, and names over XATTR_NAME_MAX.
			mustFail(t, m, "Invalid argument", "setfattr", "-n", "user.", "-v", "x", p)
			mustFail(t, m, "Numerical result out of range", "setfattr", "-n", "user."+strings.Repeat("n", 251), "-v", "x", p)
			d.assertUnchanged(t, "bad label names", before)
			mustRun(t, m, "setfattr", "-n", "user."+strings.Repeat("n", 250), "-v", "x", p)
		})
	}
}

func TestXattrsOutsideUserNamespace(t *testing.T) {
	t.Parallel()
	d := startNsfs(t)
	m := d.mnt
	for kind, p := range labelledObjects(t, d) {
		t.Run(kind, func(t *testing.T) {
			mustRun(t, m, "setfattr", "-n", "user.keep", "-v", "1", p)
			before := d.state(t)
			mustFail(t, m, "Operation not supported", "setfattr", "-n", "trusted.x", "-v", "1", p)
			mustFail(t, m, "Operation not supported", "setfattr", "-n", "security.x", "-v", "1", p)
			// EOPNOTSUPP, not ENODATA: ls and cp then stop asking.
			mustFail(t, m, "Operation not supported", "getfattr", "-n", "security.selinux", p)
			mustFail(t, m, "Operation not supported", "getfattr", "-n", "security.capability", p)
			mustFail(t, m, "Operation not supported", "getfattr", "-n", "system.posix_acl_access", p)
			mustFail(t, m, "Operation not supported", "getfattr", "-n", "trusted.x", p)
			mustFail(t, m, "Operation not supported", "setfattr", "-x", "security.x", p)
			d.assertUnchanged(t, "xattrs outside user.", before)

			// Every name is listed, and only labels are: -m - matches all.
			assertOutput(t, "getfattr -d -m -", mustRun(t, m, "getfattr", "-d", "-m", "-", p),
				"# file: "+p+"\nuser.keep=\"1\"\n\n")

			// Not ENOSYS: that would turn xattrs off for the whole mount.
			abs := d.path(p)
			for _, name := range []string{"trusted.x", "security.selinux", "system.posix_acl_access"} {
				_, err := unix.Lgetxattr(abs, name, make([]byte, 64))
				assertErrno(t, "getxattr "+name, err, unix.EOPNOTSUPP)
				_, err = unix.Lgetxattr(abs, name, nil) // the size probe
				assertErrno(t, "getxattr "+name+" (size probe)", err, unix.EOPNOTSUPP)
				if !strings.HasPrefix(name, "system.") { // the kernel parses an ACL first: "1" is EINVAL
					err = unix.Lsetxattr(abs, name, []byte("1"), 0)
					assertErrno(t, "setxattr "+name, err, unix.EOPNOTSUPP)
				}
				err = unix.Lremovexattr(abs, name)
				assertErrno(t, "removexattr "+name, err, unix.EOPNOTSUPP)
			}
			if got, err := xattrs(abs); err != nil || got["user.keep"] != "1" {
				t.Errorf("after the refusals the labels are %v, %v; want user.keep=1", got, err)
			}
		})
	}
	// Nodes without labels answer the same outside user.
	for _, p := range []string{".", "ns", "ns/foo/images", "ns/default/blobs/sha256"} {
		_, err := unix.Lgetxattr(d.path(p), "security.selinux", make([]byte, 64))
		assertErrno(t, "getxattr security.selinux of "+p, err, unix.EOPNOTSUPP)
		_, err = unix.Lgetxattr(d.path(p), "user.x", make([]byte, 64))
		assertErrno(t, "getxattr user.x of "+p, err, unix.ENODATA)
	}
}

func TestXattrFlagsAndSizeProbes(t *testing.T) {
	t.Parallel()
	d := startNsfs(t)
	for kind, rel := range labelledObjects(t, d) {
		t.Run(kind, func(t *testing.T) {
			p := d.path(rel)
			// XATTR_CREATE: only when absent.
			if err := unix.Setxattr(p, "user.c", []byte("one"), unix.XATTR_CREATE); err != nil {
				t.Fatalf("setxattr XATTR_CREATE of a new label: %v", err)
			}
			before := d.state(t)
			err := unix.Setxattr(p, "user.c", []byte("two"), unix.XATTR_CREATE)
			assertErrno(t, "setxattr XATTR_CREATE of an existing label", err, unix.EEXIST)
			// XATTR_REPLACE: only when present.
			err = unix.Setxattr(p, "user.r", []byte("x"), unix.XATTR_REPLACE)
			assertErrno(t, "setxattr XATTR_REPLACE of an absent label", err, unix.ENODATA)
			err = unix.Lsetxattr(p, "user.r", []byte("x"), unix.XATTR_REPLACE)
			assertErrno(t, "lsetxattr XATTR_REPLACE of an absent label", err, unix.ENODATA)
			err = unix.Removexattr(p, "user.r")
			assertErrno(t, "removexattr of an absent label", err, unix.ENODATA)
			_, err = unix.Getxattr(p, "user.r", make([]byte, 16))
			assertErrno(t, "getxattr of an absent label", err, unix.ENODATA)
			err = unix.Setxattr(p, "user.big", []byte(strings.Repeat("v", 4094)), 0)
			assertErrno(t, "setxattr of a 4097-byte label", err, unix.E2BIG)
			err = unix.Setxattr(p, "user.", []byte("v"), 0)
			assertErrno(t, "setxattr of an empty key", err, unix.EINVAL)
			d.assertUnchanged(t, "refused setxattr flags", before)

			if err := unix.Setxattr(p, "user.c", []byte("three"), unix.XATTR_REPLACE); err != nil {
				t.Fatalf("setxattr XATTR_REPLACE of an existing label: %v", err)
			}

			// Size probes: nil asks for the size; too small is ERANGE,
			// never a silently truncated value.
			n, err := unix.Getxattr(p, "user.c", nil)
			if err != nil || n != len("three") {
				t.Errorf("getxattr size probe = %d, %v; want %d", n, err, len("three"))
			}
			_, err = unix.Getxattr(p, "user.c", make([]byte, 2))
			assertErrno(t, "getxattr into a 2-byte buffer", err, unix.ERANGE)
			buf := make([]byte, 5)
			if n, err := unix.Getxattr(p, "user.c", buf); err != nil || string(buf[:n]) != "three" {
				t.Errorf("getxattr into an exact buffer = %q, %v", buf[:n], err)
			}
			want := "user.c\x00"
			n, err = unix.Listxattr(p, nil)
			if err != nil || n != len(want) {
				t.Errorf("listxattr size probe = %d, %v; want %d", n, err, len(want))
			}
			_, err = unix.Listxattr(p, make([]byte, 3))
			assertErrno(t, "listxattr into a 3-byte buffer", err, unix.ERANGE)
			lbuf := make([]byte, 64)
			if n, err := unix.Listxattr(p, lbuf); err != nil || string(lbuf[:n]) != want {
				t.Errorf("listxattr = %q, %v; want %q", lbuf[:n], err, want)
			}
			// An empty value through the syscall removes the label too.
			if err := unix.Setxattr(p, "user.c", nil, 0); err != nil {
				t.Fatalf("setxattr with an empty value: %v", err)
			}
			_, err = unix.Getxattr(p, "user.c", make([]byte, 16))
			assertErrno(t, "getxattr after setting the empty value", err, unix.ENODATA)
		})
	}
}

func TestImageLabelsFollowMvAndLn(t *testing.T) {
	t.Parallel()
	d := startNsfs(t)
	m := d.mnt
	img := newImage(32, "amd64", 100)
	d.putImage(t, "default", "a", img)
	mustRun(t, m, "setfattr", "-n", "user.origin", "-v", "test", imagePath("default", "a"))
	mustRun(t, m, "mv", imagePath("default", "a"), imagePath("default", "b"))
	assertOutput(t, "label after mv", mustRun(t, m, "getfattr", "--only-values", "-n", "user.origin", imagePath("default", "b")), "test")
	mustRun(t, m, "ln", imagePath("default", "b"), imagePath("default", "c"))
	assertOutput(t, "label after ln", mustRun(t, m, "getfattr", "--only-values", "-n", "user.origin", imagePath("default", "c")), "test")
	// The tag is a new image: its labels are its own from now on.
	mustRun(t, m, "setfattr", "-n", "user.origin", "-v", "changed", imagePath("default", "c"))
	assertOutput(t, "label of the source after changing the tag's",
		mustRun(t, m, "getfattr", "--only-values", "-n", "user.origin", imagePath("default", "b")), "test")
}

func TestContentLabelsArePerNamespace(t *testing.T) {
	t.Parallel()
	d := startNsfs(t)
	m := d.mnt
	img := newImage(33, "amd64", 100)
	d.putImage(t, "default", "app:v1", img)
	mustRun(t, m, "setfattr", "-n", "user.seen", "-v", "default", blobPath("default", img.config.hex()))
	mustRun(t, m, "mkdir", "ns/foo")
	mustRun(t, m, "cp", imagePath("default", "app:v1"), imagePath("foo", "app:v1"))
	assertOutput(t, "getfattr -d of the blob as foo holds it", mustRun(t, m, "getfattr", "-d", blobPath("foo", img.config.hex())), "")
	mustRun(t, m, "setfattr", "-n", "user.seen", "-v", "foo", blobPath("foo", img.config.hex()))
	assertOutput(t, "the label in default", mustRun(t, m, "getfattr", "--only-values", "-n", "user.seen", blobPath("default", img.config.hex())), "default")
	assertOutput(t, "the label in foo", mustRun(t, m, "getfattr", "--only-values", "-n", "user.seen", blobPath("foo", img.config.hex())), "foo")
}
