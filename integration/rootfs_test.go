package integration

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"golang.org/x/sys/unix"
)

// rootfsEntry is one tar entry of a test layer.
type rootfsEntry struct {
	name, link string
	typ        byte
	mode       int64
	uid, gid   int
	data       string
	major      int64
	minor      int64
	xattrs     map[string]string
}

var rootfsEpoch = time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)

// tarLayer writes entries as a tar stream (PAX where a header needs it).
func tarLayer(t *testing.T, entries []rootfsEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for i, e := range entries {
		mode := e.mode
		if mode == 0 {
			mode = 0o644
			if e.typ == tar.TypeDir {
				mode = 0o755
			}
		}
		hdr := &tar.Header{Name: e.name, Linkname: e.link, Typeflag: e.typ, Mode: mode, Uid: e.uid, Gid: e.gid,
			Size: int64(len(e.data)), ModTime: rootfsEpoch.Add(time.Duration(i) * time.Minute),
			Devmajor: e.major, Devminor: e.minor, Format: tar.FormatPAX}
		if e.typ != tar.TypeReg {
			hdr.Size = 0
		}
		for k, v := range e.xattrs {
			if hdr.PAXRecords == nil {
				hdr.PAXRecords = map[string]string{}
			}
			hdr.PAXRecords["SCHILY.xattr."+k] = v
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatalf("tar %s: %v", e.name, err)
		}
		if hdr.Size > 0 {
			tw.Write([]byte(e.data))
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func gzipBytes(t *testing.T, b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func zstdBytes(t *testing.T, b []byte) []byte {
	var buf bytes.Buffer
	zw, _ := zstd.NewWriter(&buf)
	zw.Write(b)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

const (
	mediaTypeOCILayerTar  = "application/vnd.oci.image.layer.v1.tar"
	mediaTypeOCILayerZstd = "application/vnd.oci.image.layer.v1.tar+zstd"
)

// layerImage builds an OCI image of the given layers (tar streams and
// their compressed blobs), with the diff_ids an unpacker checks.
func layerImage(tars [][]byte, layers []blob) testImage { return archImage("amd64", tars, layers) }

// archImage is layerImage for another architecture.
func archImage(arch string, tars [][]byte, layers []blob) testImage {
	var img testImage
	var diffIDs []string
	for i, l := range layers {
		img.layers = append(img.layers, l)
		diffIDs = append(diffIDs, "sha256:"+sha256Hex(tars[i]))
	}
	img.config = blob{mediaType: mediaTypeOCIConfig, data: mustJSON(map[string]any{
		"architecture": arch, "os": "linux",
		"rootfs": map[string]any{"type": "layers", "diff_ids": diffIDs},
	})}
	m := manifest{SchemaVersion: 2, MediaType: mediaTypeOCIManifest}
	cfg := img.config.descriptor()
	m.Config = &cfg
	for _, l := range img.layers {
		m.Layers = append(m.Layers, l.descriptor())
	}
	img.manifest = blob{mediaType: mediaTypeOCIManifest, data: mustJSON(m)}
	return img
}

// rootfsTestLayers are three layers that delete, replace and re-create
// files and directories, with opaque directories, hard links within and
// across directories, symlink chains and absolute symlinks, long names,
// empty files, setuid and device entries, owners and xattrs.
func rootfsTestLayers(t *testing.T) [][]byte {
	long := strings.Repeat("long-name-", 15) + "end"
	one := []rootfsEntry{
		{name: "./", typ: tar.TypeDir, mode: 0o755},
		{name: "etc/", typ: tar.TypeDir},
		{name: "etc/os-release", typ: tar.TypeReg, data: "NAME=one\n"},
		{name: "etc/shadow", typ: tar.TypeReg, mode: 0o600, uid: 0, gid: 42, data: "root:*:1::::::\n"},
		{name: "a/", typ: tar.TypeDir, mode: 0o750, uid: 1000, gid: 1000},
		{name: "a/b/", typ: tar.TypeDir},
		{name: "a/b/file", typ: tar.TypeReg, data: "file in a/b\n", uid: 1000, gid: 100},
		{name: "a/hl", typ: tar.TypeLink, link: "a/b/file"},
		{name: "a/b/hl2", typ: tar.TypeLink, link: "a/b/file"},
		{name: "a/empty", typ: tar.TypeReg},
		{name: "bin/", typ: tar.TypeDir},
		{name: "bin/su", typ: tar.TypeReg, mode: 0o4755, data: "#!/bin/false\n"},
		{name: "bin/sgid", typ: tar.TypeReg, mode: 0o2755, data: "x"},
		{name: "bin/s1", typ: tar.TypeSymlink, link: "s2"},
		{name: "bin/s2", typ: tar.TypeSymlink, link: "../etc/os-release"},
		{name: "bin/abs", typ: tar.TypeSymlink, link: "/etc/os-release"},
		{name: "bin/dangling", typ: tar.TypeSymlink, link: "/nowhere/at/all"},
		{name: "dev/", typ: tar.TypeDir},
		{name: "dev/null", typ: tar.TypeChar, mode: 0o666, major: 1, minor: 3},
		{name: "dev/sda", typ: tar.TypeBlock, mode: 0o660, gid: 6, major: 8, minor: 0},
		{name: "dev/fifo", typ: tar.TypeFifo, mode: 0o600},
		{name: "opq/", typ: tar.TypeDir},
		{name: "opq/old", typ: tar.TypeReg, data: "hidden by the opaque dir\n"},
		{name: "opq/sub/", typ: tar.TypeDir},
		{name: "opq/sub/deep", typ: tar.TypeReg, data: "also hidden\n"},
		{name: "d1/", typ: tar.TypeDir},
		{name: "d1/x", typ: tar.TypeReg, data: "gone when d1 becomes a file\n"},
		{name: "f1", typ: tar.TypeReg, data: "becomes a directory\n"},
		{name: "d2/", typ: tar.TypeDir},
		{name: "d2/y", typ: tar.TypeReg, data: "whited out with d2\n"},
		{name: "x/" + long, typ: tar.TypeReg, data: "a long name\n"},
		{name: "x/attrs", typ: tar.TypeReg, data: "xattrs\n", xattrs: map[string]string{"user.comment": "from the tar", "user.empty-ish": "v"}},
	}
	two := []rootfsEntry{
		{name: "etc/os-release", typ: tar.TypeReg, data: "NAME=two\nVERSION=2\n"},
		{name: "a/b/.wh.file", typ: tar.TypeReg},
		{name: "opq/", typ: tar.TypeDir, mode: 0o700},
		{name: "opq/.wh..wh..opq", typ: tar.TypeReg},
		{name: "opq/new", typ: tar.TypeReg, data: "made in layer two\n"},
		{name: "d1", typ: tar.TypeReg, data: "d1 is a file now\n"},
		{name: "f1/", typ: tar.TypeDir},
		{name: "f1/inside", typ: tar.TypeReg, data: "f1 is a directory now\n"},
		{name: ".wh.d2", typ: tar.TypeReg},
		{name: "x/" + long + "-2", typ: tar.TypeReg, data: "another long name\n"},
	}
	three := []rootfsEntry{
		{name: "a/b/file", typ: tar.TypeReg, data: "re-created in layer three\n", mode: 0o640},
		{name: "etc/cross", typ: tar.TypeLink, link: "a/b/file"},
		{name: "opq/.wh.new", typ: tar.TypeReg},
		{name: "d2/", typ: tar.TypeDir},
		{name: "d2/again", typ: tar.TypeReg, data: "d2 came back\n"},
		{name: "bin/s2", typ: tar.TypeSymlink, link: "/bin/abs"},
	}
	return [][]byte{tarLayer(t, one), tarLayer(t, two), tarLayer(t, three)}
}

// unpackWithUmoci unpacks img with `umoci raw unpack` from an OCI layout
// made of its blobs, into a new directory on the store's disk.
func unpackWithUmoci(t *testing.T, img testImage) string {
	t.Helper()
	layout := t.TempDir()
	os.MkdirAll(filepath.Join(layout, "blobs", "sha256"), 0o755)
	for _, b := range img.blobs() {
		os.WriteFile(filepath.Join(layout, "blobs", "sha256", b.hex()), b.data, 0o644)
	}
	os.WriteFile(filepath.Join(layout, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644)
	desc := map[string]any{"mediaType": mediaTypeOCIManifest, "digest": img.manifest.digest(), "size": len(img.manifest.data),
		"annotations": map[string]string{"org.opencontainers.image.ref.name": "v1"}}
	os.WriteFile(filepath.Join(layout, "index.json"), mustJSON(map[string]any{"schemaVersion": 2, "manifests": []any{desc}}), 0o644)
	return umociRawUnpack(t, layout+":v1")
}

// umociRawUnpack unpacks image (LAYOUT:TAG) with `umoci raw unpack` into
// a new directory on the store's disk.
func umociRawUnpack(t *testing.T, image string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "rootfs")
	// umoci reports its progress on stderr.
	if r := run(t, "", "umoci", "raw", "unpack", "--image", image, out); r.code != 0 {
		t.Fatalf("%v", r)
	}
	return out
}

// treeListing describes every file below root, one line each: path,
// type and mode, owner, size, mtime, symlink target, link count, sha256,
// xattrs; then the hard-link groups. Directory sizes and times are left
// out (an unpacker's directories have their filesystem's size, and their
// times move as entries are made in them).
func treeListing(t *testing.T, root string) string {
	t.Helper()
	var lines []string
	groups := map[uint64][]string{}
	err := filepath.Walk(root, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		st := info.Sys().(*syscall.Stat_t)
		line := fmt.Sprintf("%s %s %o %d:%d", rel, info.Mode().Type(), st.Mode&0o7777, st.Uid, st.Gid)
		switch {
		case info.Mode().IsRegular():
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(data)
			line += fmt.Sprintf(" size=%d mtime=%d nlink=%d sha256=%s", st.Size, st.Mtim.Sec, st.Nlink, hex.EncodeToString(sum[:8]))
			groups[st.Ino] = append(groups[st.Ino], rel)
		case info.Mode()&os.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			line += fmt.Sprintf(" -> %s mtime=%d", target, st.Mtim.Sec)
		case info.Mode()&os.ModeDevice != 0:
			line += fmt.Sprintf(" dev=%d,%d mtime=%d", unix.Major(st.Rdev), unix.Minor(st.Rdev), st.Mtim.Sec)
		case info.Mode()&os.ModeNamedPipe != 0:
			line += fmt.Sprintf(" mtime=%d", st.Mtim.Sec)
		}
		if info.Mode()&os.ModeSymlink == 0 {
			line += " xattrs=" + userXattrs(t, p)
		}
		lines = append(lines, line)
		return nil
	})
	if err != nil {
		t.Fatalf("walk %s: %v", root, err)
	}
	for _, g := range groups {
		if len(g) > 1 {
			sort.Strings(g)
			lines = append(lines, "linked: "+strings.Join(g, " "))
		}
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

func userXattrs(t *testing.T, p string) string {
	buf := make([]byte, 4096)
	n, err := unix.Llistxattr(p, buf)
	if err != nil {
		return "error:" + err.Error()
	}
	var out []string
	for _, name := range strings.Split(string(buf[:n]), "\x00") {
		if !strings.HasPrefix(name, "user.") {
			continue
		}
		v := make([]byte, 4096)
		m, err := unix.Lgetxattr(p, name, v)
		if err != nil {
			return "error:" + err.Error()
		}
		out = append(out, name+"="+string(v[:m]))
	}
	sort.Strings(out)
	return strings.Join(out, ",")
}

func TestRootfsEqualsUnpack(t *testing.T) {
	tars := rootfsTestLayers(t)
	layers := []blob{
		{mediaType: mediaTypeOCILayer, data: gzipBytes(t, tars[0])},
		{mediaType: mediaTypeOCILayerTar, data: tars[1]},
		{mediaType: mediaTypeOCILayer, data: gzipBytes(t, tars[2])},
	}
	img := layerImage(tars, layers)
	want := treeListing(t, unpackWithUmoci(t, img))

	d := startNsfs(t)
	d.putImage(t, "default", "app:v1", img)
	got := treeListing(t, d.path("ns/default/rootfs/app:v1"))
	assertOutput(t, "rootfs/app:v1 against umoci raw unpack", got, want)

	// The same layers with the last one zstd-compressed show the same
	// tree.
	zimg := layerImage(tars, []blob{layers[0], layers[1], {mediaType: mediaTypeOCILayerZstd, data: zstdBytes(t, tars[2])}})
	d.putImage(t, "default", "app:zstd", zimg)
	assertOutput(t, "rootfs/app:zstd", treeListing(t, d.path("ns/default/rootfs/app:zstd")), want)

	// Names from the root: a layer whose names start with "/" (its root
	// "/" sets the root's mode and owner as "./" does), then umoci's own
	// insert of a directory at "/", which writes such a layer, made in
	// place in the namespace. Both tools read the same image.
	abs := tarLayer(t, []rootfsEntry{
		{name: "/", typ: tar.TypeDir, mode: 0o751, uid: 7, gid: 7},
		{name: "/abs/", typ: tar.TypeDir, mode: 0o700, uid: 5},
		{name: "/abs/path", typ: tar.TypeReg, data: "from /abs/path\n"},
		{name: "//two/slashes", typ: tar.TypeReg, data: "two slashes\n"},
		{name: "/etc/os-release", typ: tar.TypeReg, data: "NAME=absolute\n"},
		{name: "x/../inner", typ: tar.TypeReg, data: "a .. that stays inside\n"},
		{name: "/hl", typ: tar.TypeLink, link: "/abs/path"},
		{name: "/bin/.wh.su", typ: tar.TypeReg},
	})
	aimg := layerImage(append(tars[:3:3], abs), append(layers[:3:3], blob{mediaType: mediaTypeOCILayer, data: gzipBytes(t, abs)}))
	d.putImage(t, "default", "abs", aimg)
	src := t.TempDir()
	os.MkdirAll(filepath.Join(src, "inserted", "sub"), 0o755)
	os.WriteFile(filepath.Join(src, "inserted", "sub", "f"), []byte("inserted by umoci\n"), 0o644)
	os.WriteFile(filepath.Join(src, "top"), []byte("at the root\n"), 0o600)
	os.Chmod(src, 0o750)
	layout := d.path("ns", "default")
	mustTool(t, "umoci", "insert", "--image", layout+":abs", "--tag", "inserted", src, "/")
	for _, ref := range []string{"abs", "inserted"} {
		want := treeListing(t, umociRawUnpack(t, layout+":"+ref))
		for _, line := range []string{"abs/path ", "two/slashes ", "inner ", "linked: abs/path hl"} {
			if !strings.Contains(want, line) {
				t.Fatalf("umoci's unpack of %s has no %q:\n%s", ref, line, want)
			}
		}
		assertOutput(t, "rootfs/"+ref+" against umoci raw unpack", treeListing(t, d.path("ns/default/rootfs", ref)), want)
	}
	if _, err := os.Stat(d.path("ns/default/rootfs/inserted/inserted/sub/f")); err != nil {
		t.Errorf("the file umoci inserted: %v", err)
	}
}

// simpleRootfsImage is one gzip layer with a few files.
func simpleRootfsImage(t *testing.T, files ...rootfsEntry) testImage {
	tars := [][]byte{tarLayer(t, files)}
	return layerImage(tars, []blob{{mediaType: mediaTypeOCILayer, data: gzipBytes(t, tars[0])}})
}

func TestRootfsReadOnly(t *testing.T) {
	d := startNsfs(t)
	d.putImage(t, "default", "lib/app:v1", simpleRootfsImage(t,
		rootfsEntry{name: "etc/", typ: tar.TypeDir},
		rootfsEntry{name: "etc/passwd", typ: tar.TypeReg, data: "root:x:0:0::/root:/bin/sh\n"},
		rootfsEntry{name: "bin/", typ: tar.TypeDir},
		rootfsEntry{name: "bin/sh", typ: tar.TypeSymlink, link: "/bin/dash"},
		rootfsEntry{name: "dev/", typ: tar.TypeDir},
		rootfsEntry{name: "dev/null", typ: tar.TypeChar, mode: 0o666, major: 1, minor: 3},
		rootfsEntry{name: "x", typ: tar.TypeReg, data: "x", xattrs: map[string]string{"user.k": "v"}},
	))
	// rootfs/ is looked up, never listed: cp -a, rsync, tar, du and find
	// of a namespace do not walk every image's files.
	assertOutput(t, "ls ns/default", mustRun(t, d.mnt, "ls", "ns/default"), lines("blobs", "images", "index.json", "oci-layout"))
	assertOutput(t, "find ns/default -maxdepth 1 -name rootfs", mustRun(t, d.mnt, "find", "ns/default", "-maxdepth", "1", "-name", "rootfs"), "")
	assertOutput(t, "ls rootfs/lib", mustRun(t, d.mnt, "ls", "ns/default/rootfs/lib"), lines("app:v1"))
	root := "ns/default/rootfs/lib/app:v1"
	assertOutput(t, "cat etc/passwd", mustRun(t, d.mnt, "cat", root+"/etc/passwd"), "root:x:0:0::/root:/bin/sh\n")
	// Names the layer did not record answer as elsewhere on the mount.
	mustFail(t, d.mnt, "Operation not supported", "getfattr", "-n", "security.selinux", root+"/etc/passwd")
	mustFail(t, d.mnt, "No such attribute", "getfattr", "-n", "user.missing", root+"/x")
	assertOutput(t, "readlink bin/sh", mustRun(t, d.mnt, "readlink", root+"/bin/sh"), "/bin/dash\n")
	before := d.state(t)

	p := d.path(root)
	_, err := unix.Open(p+"/etc/passwd", unix.O_WRONLY|unix.O_CLOEXEC, 0)
	assertErrno(t, "open etc/passwd for writing", err, unix.EROFS)
	_, err = unix.Open(p+"/etc/new", unix.O_WRONLY|unix.O_CREAT|unix.O_CLOEXEC, 0o644)
	assertErrno(t, "create etc/new", err, unix.EROFS)
	_, err = unix.Open(p+"/etc/passwd", unix.O_RDONLY|unix.O_TRUNC|unix.O_CLOEXEC, 0)
	assertErrno(t, "open etc/passwd with O_TRUNC", err, unix.EROFS)
	assertErrno(t, "unlink etc/passwd", unix.Unlink(p+"/etc/passwd"), unix.EROFS)
	assertErrno(t, "rmdir etc", unix.Rmdir(p+"/etc"), unix.EROFS)
	assertErrno(t, "mkdir etc/d", unix.Mkdir(p+"/etc/d", 0o755), unix.EROFS)
	assertErrno(t, "rename etc/passwd", unix.Rename(p+"/etc/passwd", p+"/etc/p2"), unix.EROFS)
	assertErrno(t, "symlink etc/l", unix.Symlink("x", p+"/etc/l"), unix.EROFS)
	assertErrno(t, "link etc/h", unix.Link(p+"/etc/passwd", p+"/etc/h"), unix.EROFS)
	assertErrno(t, "mknod etc/n", unix.Mknod(p+"/etc/n", unix.S_IFIFO|0o644, 0), unix.EROFS)
	assertErrno(t, "chmod etc/passwd", unix.Chmod(p+"/etc/passwd", 0o600), unix.EROFS)
	assertErrno(t, "chown etc/passwd", unix.Chown(p+"/etc/passwd", 1, 1), unix.EROFS)
	assertErrno(t, "truncate etc/passwd", unix.Truncate(p+"/etc/passwd", 0), unix.EROFS)
	assertErrno(t, "utimes etc/passwd", unix.Utimes(p+"/etc/passwd", []unix.Timeval{{}, {}}), unix.EROFS)
	assertErrno(t, "setxattr x", unix.Setxattr(p+"/x", "user.k", []byte("w"), 0), unix.EROFS)
	assertErrno(t, "removexattr x", unix.Removexattr(p+"/x", "user.k"), unix.EROFS)
	assertErrno(t, "mkdir in rootfs/", unix.Mkdir(d.path("ns/default/rootfs/new"), 0o755), unix.EROFS)
	assertErrno(t, "rmdir rootfs/lib/app:v1", unix.Rmdir(d.path("ns/default/rootfs/lib/app:v1")), unix.EROFS)
	assertErrno(t, "rmdir rootfs with an image", unix.Rmdir(d.path("ns/default/rootfs")), unix.ENOTEMPTY)
	// nodev: a device entry is shown, never opened.
	_, err = unix.Open(p+"/dev/null", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	assertErrno(t, "open dev/null", err, unix.EACCES)
	v := make([]byte, 16)
	n, err := unix.Getxattr(p+"/x", "user.k", v)
	if err != nil || string(v[:n]) != "v" {
		t.Errorf("getxattr x user.k: %q, %v; want \"v\"", v[:n], err)
	}
	d.assertUnchanged(t, "writes under rootfs/", before)

	// rm -rf of the namespace removes the images first: rootfs/ is then
	// empty and goes too.
	mustRun(t, d.mnt, "mkdir", "ns/gone")
	d.putImage(t, "gone", "app", simpleRootfsImage(t, rootfsEntry{name: "f", typ: tar.TypeReg, data: "f"}))
	mustRun(t, d.mnt, "cat", "ns/gone/rootfs/app/f")
	mustRun(t, d.mnt, "rm", "-rf", "ns/gone")
	assertOutput(t, "ls ns", mustRun(t, d.mnt, "ls", "ns"), lines("default"))
}

// A layer with a name that climbs out of the root, even after its
// leading "/" is stripped, is refused whole, never followed; so is a tar
// cut short. rootfs/<ref> is then a directory that cannot be opened and
// whose xattr user.nsfs.error says why (ls -l shows it, not d?????????),
// and the log names the layer, the entry and the reason at each access.
func TestRootfsRefusesEscapes(t *testing.T) {
	d := startNsfs(t)
	ok := rootfsEntry{name: "ok", typ: tar.TypeReg, data: "ok\n"}
	cut := tarLayer(t, []rootfsEntry{ok, {name: "big", typ: tar.TypeReg, data: strings.Repeat("x", 4096)}})
	cut = cut[:len(cut)-3000] // inside big's bytes
	layers := map[string]string{}
	for _, c := range []struct {
		ref string
		img testImage
		why string
	}{
		{"dotdot", simpleRootfsImage(t, ok, rootfsEntry{name: "../../etc/evil", typ: tar.TypeReg, data: "evil\n"}),
			`tar entry "../../etc/evil" climbs out of the root`},
		{"absolute", simpleRootfsImage(t, ok, rootfsEntry{name: "/../etc/evil", typ: tar.TypeReg, data: "evil\n"}),
			`tar entry "/../etc/evil" climbs out of the root`},
		{"inner", simpleRootfsImage(t, ok, rootfsEntry{name: "a/../../evil", typ: tar.TypeReg, data: "evil\n"}),
			`tar entry "a/../../evil" climbs out of the root`},
		{"hardlink", simpleRootfsImage(t, ok, rootfsEntry{name: "a", typ: tar.TypeLink, link: "/../../etc/shadow"}),
			`tar entry "a": hard link target "/../../etc/shadow" climbs out of the root`},
		{"cut", layerImage([][]byte{cut}, []blob{{mediaType: mediaTypeOCILayer, data: gzipBytes(t, cut)}}),
			`tar entry "big": unexpected EOF`},
	} {
		d.putImage(t, "default", c.ref, c.img)
		layer := c.img.layers[0].digest()
		layers[c.ref] = layer
		before := d.state(t)
		dir := d.path("ns/default/rootfs", c.ref)
		_, err := os.Stat(filepath.Join(dir, "ok"))
		assertErrno(t, "stat rootfs/"+c.ref+"/ok", err, unix.EIO)
		_, err = os.ReadDir(dir)
		assertErrno(t, "ls rootfs/"+c.ref, err, unix.EIO)
		if st, err := os.Lstat(dir); err != nil || !st.IsDir() || st.Mode().Perm()&0o222 != 0 {
			t.Errorf("lstat rootfs/%s: %v, %v; want a read-only directory", c.ref, st, err)
		}
		buf := make([]byte, 4096)
		n, err := unix.Getxattr(dir, "user.nsfs.error", buf)
		if err != nil || !strings.Contains(string(buf[:max(n, 0)]), layer+") is not shown: ") || !strings.Contains(string(buf[:max(n, 0)]), c.why) {
			t.Errorf("getxattr user.nsfs.error of rootfs/%s: %q, %v; want the layer and %q", c.ref, buf[:max(n, 0)], err, c.why)
		}
		assertErrno(t, "mkdir in rootfs/"+c.ref, os.Mkdir(filepath.Join(dir, "x"), 0o755), unix.EIO)
		assertErrno(t, "setfattr rootfs/"+c.ref, unix.Setxattr(dir, "user.x", []byte("1"), 0), unix.EROFS)
		d.assertUnchanged(t, "refusals below rootfs/"+c.ref, before)
		d.waitForLog(t, "lookup ns/default/rootfs/"+c.ref+": no rootfs: layer 1 ("+layer+") is not shown: "+c.why)
	}
	// getfattr -d shows the reason, ls -l the entries (no "?").
	assertOutput(t, "getfattr -d rootfs/dotdot", mustRun(t, d.path("ns/default/rootfs"), "getfattr", "--absolute-names", "-d", "dotdot"),
		"# file: dotdot\nuser.nsfs.error=\"layer 1 ("+layers["dotdot"]+") is not shown: tar entry \\\"../../etc/evil\\\" climbs out of the root (a \\\"..\\\" above it)\"\n\n")
	if out := mustRun(t, d.path("ns/default/rootfs"), "ls", "-l"); strings.Contains(out, "?") {
		t.Errorf("ls -l rootfs:\n%s", out)
	}
}

func TestRootfsIndexOnceDurableCollected(t *testing.T) {
	d := startNsfs(t)
	var files []rootfsEntry
	for i := 0; i < 200; i++ {
		files = append(files, rootfsEntry{name: fmt.Sprintf("f%03d", i), typ: tar.TypeReg, data: strings.Repeat(fmt.Sprint(i), 1000)})
	}
	img := simpleRootfsImage(t, files...)
	d.putImage(t, "default", "app", img)
	mustRun(t, d.mnt, "mkdir", "ns/other")
	d.putImage(t, "other", "same", img)
	// Many readers at once, through two namespaces: one index.
	script := ""
	for i := 0; i < 16; i++ {
		script += fmt.Sprintf("cat ns/default/rootfs/app/f%03d ns/other/rootfs/same/f%03d >/dev/null &\n", i, i+100)
	}
	mustSh(t, d.mnt, script+"wait")
	layer := img.layers[0].hex()
	if n := strings.Count(d.logs.String(), "rootfs: indexed layer sha256:"+layer); n != 1 {
		t.Fatalf("layer indexed %d times, want 1:\n%s", n, d.logs.String())
	}
	indexFile := filepath.Join(d.root, "layerindex", "sha256", layer)
	st1, err := os.Stat(indexFile)
	if err != nil {
		t.Fatalf("index beside the blob: %v", err)
	}

	// A remount reads the index from its file.
	d = d.remount(t)
	assertOutput(t, "f007 after remount", mustRun(t, d.mnt, "cat", "ns/default/rootfs/app/f007"), strings.Repeat("7", 1000))
	if strings.Contains(d.logs.String(), "rootfs: indexed layer") {
		t.Errorf("remount built the index again:\n%s", d.logs.String())
	}
	if st2, _ := os.Stat(indexFile); st2 == nil || !st2.ModTime().Equal(st1.ModTime()) {
		t.Errorf("the index file changed across the remount")
	}

	// A damaged index is rebuilt.
	d.stop(t)
	data, _ := os.ReadFile(indexFile)
	data[len(data)-10] ^= 0xff
	os.WriteFile(indexFile, data, 0o600)
	d = d.restart(t)
	assertOutput(t, "f150 with a damaged index", mustRun(t, d.mnt, "cat", "ns/other/rootfs/same/f150"), strings.Repeat("150", 1000))
	d.waitForLog(t, "rootfs: indexed layer sha256:"+layer)

	// gc removes the index with its blob.
	mustRun(t, d.mnt, "rm", "ns/default/images/app", "ns/other/images/same")
	d.stop(t)
	mustRun(t, "/", nsfsBin, "gc", "--root", d.root)
	if _, err := os.Stat(indexFile); !os.IsNotExist(err) {
		t.Errorf("index of a collected layer: %v, want it gone", err)
	}
}

// Images whose layers are no tar streams, or that have no manifest for
// this host, have no rootfs entry; an index shows the host's platform.
func TestRootfsListsWhatItCanShow(t *testing.T) {
	d := startNsfs(t)
	d.putImage(t, "default", "random", newImage(1, "amd64", 1000))
	amd := simpleRootfsImage(t, rootfsEntry{name: "arch", typ: tar.TypeReg, data: "amd64\n"})
	armTars := [][]byte{tarLayer(t, []rootfsEntry{{name: "arch", typ: tar.TypeReg, data: "arm64\n"}})}
	arm := archImage("arm64", armTars, []blob{{mediaType: mediaTypeOCILayer, data: gzipBytes(t, armTars[0])}})
	for _, img := range []testImage{amd, arm} {
		for _, b := range append([]blob{img.config, img.manifest}, img.layers...) {
			d.putBlob(t, "default", b)
		}
	}
	d.putManifest(t, "default", "multi", newIndex(arm, amd).data)
	d.putManifest(t, "default", "armonly", newIndex(arm).data)
	if runtime.GOARCH != "amd64" {
		t.Skip("the test images are for amd64 hosts") // CI's machines are
	}
	assertOutput(t, "ls rootfs", mustRun(t, d.mnt, "ls", "ns/default/rootfs"), lines("multi"))
	assertOutput(t, "cat rootfs/multi/arch", mustRun(t, d.mnt, "cat", "ns/default/rootfs/multi/arch"), "amd64\n")
	for _, ref := range []string{"random", "armonly"} {
		_, err := os.Stat(d.path("ns/default/rootfs", ref))
		assertErrno(t, "stat rootfs/"+ref, err, unix.ENOENT)
	}
	d.waitForLog(t, "is not a tar stream")
	d.waitForLog(t, "has no manifest for linux/amd64")
	mustSh(t, d.mnt, "ls -lR . >/dev/null && find . >/dev/null")
}

// systemTar runs this machine's GNU tar in dir and returns the archive.
func systemTar(t *testing.T, dir string, args ...string) []byte {
	t.Helper()
	out := filepath.Join(t.TempDir(), "layer.tar")
	if r := run(t, dir, "tar", append([]string{"-cf", out}, args...)...); r.code != 0 {
		t.Fatalf("%v", r)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// sparseFile makes a file of size bytes holding data at a few offsets
// and holes elsewhere.
func sparseFile(t *testing.T, path string, size int64) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, off := range []int64{0, size / 3, size - 5000} {
		if _, err := f.WriteAt(bytes.Repeat([]byte(fmt.Sprintf("data at %d\n", off)), 200), off); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
}

// A layer of this machine's own files (tens of thousands of man pages,
// with GNU long-name headers, symlinks and hard links), then a
// layer that whites out and makes opaque parts of it with PAX sparse
// files, then a GNU-format one (gzip, and zstd): the same tree as
// umoci's unpack.
func TestRootfsRealTreeEqualsUnpack(t *testing.T) {
	if _, err := os.Stat("/usr/share/man/man1"); err != nil {
		t.Skip("no /usr/share/man on this machine")
	}
	realTar := systemTar(t, "/", "--format=gnu", "usr/share/man")

	two := t.TempDir()
	os.MkdirAll(filepath.Join(two, "usr/share/man"), 0o755)
	os.WriteFile(filepath.Join(two, "usr/share/man/.wh.man8"), nil, 0o644)
	os.MkdirAll(filepath.Join(two, "usr/share/man/man3"), 0o755)
	os.WriteFile(filepath.Join(two, "usr/share/man/man3/.wh..wh..opq"), nil, 0o644)
	os.WriteFile(filepath.Join(two, "usr/share/man/man3/only-this"), []byte("the rest is hidden\n"), 0o644)
	os.MkdirAll(filepath.Join(two, "sparse"), 0o755)
	sparseFile(t, filepath.Join(two, "sparse/pax"), 48<<20)
	os.WriteFile(filepath.Join(two, "sparse/empty"), nil, 0o644)
	twoTar := systemTar(t, two, "--format=posix", "--sparse", "--numeric-owner", ".")

	three := t.TempDir()
	long := filepath.Join(three, strings.Repeat("a-long-directory-name/", 8))
	os.MkdirAll(long, 0o755)
	os.WriteFile(filepath.Join(long, "file"), []byte("under a GNU long name\n"), 0o644)
	os.Link(filepath.Join(long, "file"), filepath.Join(three, "link-to-long"))
	threeTar := systemTar(t, three, "--format=gnu", "--numeric-owner", ".")

	tars := [][]byte{realTar, twoTar, threeTar}
	layers := []blob{
		{mediaType: mediaTypeOCILayer, data: gzipBytes(t, realTar)},
		{mediaType: mediaTypeOCILayerTar, data: twoTar},
		{mediaType: mediaTypeOCILayer, data: gzipBytes(t, threeTar)},
	}
	img := layerImage(tars, layers)
	want := treeListing(t, unpackWithUmoci(t, img))
	if n := strings.Count(want, "\n"); n < 10000 {
		t.Fatalf("the unpack has %d entries, want tens of thousands", n)
	}
	d := startNsfs(t, withWatchdog(10*time.Minute))
	d.putImage(t, "default", "usr", img)
	// umoci 0.4 unpacks no zstd: the same layers with the last one zstd
	// must show the same tree.
	zimg := layerImage(tars, []blob{layers[0], layers[1], {mediaType: mediaTypeOCILayerZstd, data: zstdBytes(t, threeTar)}})
	d.putImage(t, "default", "usr:zstd", zimg)
	for _, ref := range []string{"usr", "usr:zstd"} {
		got := treeListing(t, d.path("ns/default/rootfs", ref))
		if got != want {
			gotLines, wantLines := strings.Split(got, "\n"), strings.Split(want, "\n")
			t.Errorf("rootfs/%s differs from umoci raw unpack (%d lines, want %d); first differences:\n%s",
				ref, len(gotLines), len(wantLines), firstDifferences(gotLines, wantLines, 10))
		}
	}
}

// firstDifferences lists up to n lines one side has and the other not.
func firstDifferences(got, want []string, n int) string {
	in := func(lines []string) map[string]bool {
		m := map[string]bool{}
		for _, l := range lines {
			m[l] = true
		}
		return m
	}
	g, w := in(got), in(want)
	var out []string
	for _, l := range got {
		if !w[l] && len(out) < n {
			out = append(out, "+ "+l)
		}
	}
	for _, l := range want {
		if !g[l] && len(out) < 2*n {
			out = append(out, "- "+l)
		}
	}
	return strings.Join(out, "\n")
}

// A file of several GiB (sparse in the tar): its size, its data and its
// holes read right at any offset, without the file being written out.
func TestRootfsHugeSparseFile(t *testing.T) {
	dir := t.TempDir()
	const size = 5 << 30
	sparseFile(t, filepath.Join(dir, "huge"), size)
	tarBytes := systemTar(t, dir, "--format=posix", "--sparse", "huge")
	img := layerImage([][]byte{tarBytes}, []blob{{mediaType: mediaTypeOCILayer, data: gzipBytes(t, tarBytes)}})
	d := startNsfs(t)
	d.putImage(t, "default", "huge", img)
	p := d.path("ns/default/rootfs/huge/huge")
	st, err := os.Stat(p)
	if err != nil || st.Size() != size {
		t.Fatalf("stat huge: %v, size %d, want %d", err, st.Size(), int64(size))
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, c := range []struct {
		off  int64
		want string
	}{
		{size - 5000, fmt.Sprintf("data at %d\n", int64(size-5000))},
		{size / 3, fmt.Sprintf("data at %d\n", int64(size/3))},
		{size / 2, strings.Repeat("\x00", 16)},
		{0, "data at 0\n"},
	} {
		buf := make([]byte, len(c.want))
		if _, err := f.ReadAt(buf, c.off); err != nil || string(buf) != c.want {
			t.Errorf("huge at %d: %q, %v; want %q", c.off, buf, err, c.want)
		}
	}
}

// GNU sparse entries (typeflag 'S', which umoci 0.4 does not unpack)
// show what GNU tar -x makes of them.
func TestRootfsGNUSparseEqualsTar(t *testing.T) {
	dir := t.TempDir()
	sparseFile(t, filepath.Join(dir, "gnu-sparse"), 40<<20)
	os.WriteFile(filepath.Join(dir, "plain"), []byte("plain\n"), 0o644)
	tarBytes := systemTar(t, dir, "--format=gnu", "--sparse", "--numeric-owner", ".")
	unpacked := t.TempDir()
	if r := run(t, unpacked, "tar", "-xpf", writeTemp(t, "layer.tar", tarBytes)); r.code != 0 {
		t.Fatalf("%v", r)
	}
	img := layerImage([][]byte{tarBytes}, []blob{{mediaType: mediaTypeOCILayerZstd, data: zstdBytes(t, tarBytes)}})
	d := startNsfs(t)
	d.putImage(t, "default", "gnu", img)
	assertOutput(t, "rootfs/gnu against tar -x", treeListing(t, d.path("ns/default/rootfs/gnu")), treeListing(t, unpacked))
}

// With --allow-other the kernel checks the tar's owners and modes: a
// user reads what the image lets everyone read, and not a file 0600 of
// uid 0.
func TestRootfsAllowOtherEnforcesTarModes(t *testing.T) {
	d := startNsfs(t, withFlags("--allow-other"))
	for dir := filepath.Dir(d.mnt); dir != os.TempDir() && dir != "/"; dir = filepath.Dir(dir) {
		os.Chmod(dir, 0o755) // the test's directories, so that nobody reaches the mount
	}
	d.putImage(t, "default", "app", simpleRootfsImage(t,
		rootfsEntry{name: "etc/", typ: tar.TypeDir},
		rootfsEntry{name: "etc/shadow", typ: tar.TypeReg, mode: 0o600, data: "root:secret\n"},
		rootfsEntry{name: "etc/motd", typ: tar.TypeReg, mode: 0o644, data: "hello\n"},
		rootfsEntry{name: "home/", typ: tar.TypeDir},
		rootfsEntry{name: "home/nobody/", typ: tar.TypeDir, mode: 0o700, uid: 65534, gid: 65534},
		rootfsEntry{name: "home/nobody/notes", typ: tar.TypeReg, mode: 0o600, uid: 65534, gid: 65534, data: "mine\n"},
	))
	root := d.path("ns/default/rootfs/app")
	asNobody := func(args ...string) result {
		return run(t, "/", "setpriv", append([]string{"--reuid=65534", "--regid=65534", "--clear-groups", "--"}, args...)...)
	}
	if r := asNobody("cat", root+"/etc/motd"); r.code != 0 || r.stdout != "hello\n" {
		t.Errorf("nobody reads etc/motd (0644): %v", r)
	}
	if r := asNobody("cat", root+"/home/nobody/notes"); r.code != 0 || r.stdout != "mine\n" {
		t.Errorf("nobody reads its own home/nobody/notes (0600 of 65534): %v", r)
	}
	if r := asNobody("cat", root+"/etc/shadow"); r.code == 0 || !strings.Contains(r.stderr, "Permission denied") {
		t.Errorf("nobody reads etc/shadow (0600 of root): %v", r)
	}
	if r := asNobody("ls", root+"/home/nobody"); r.code != 0 {
		t.Errorf("nobody lists its home: %v", r)
	}
	assertOutput(t, "root reads etc/shadow", mustRun(t, "/", "cat", root+"/etc/shadow"), "root:secret\n")
}
