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
func layerImage(tars [][]byte, layers []blob) testImage {
	var img testImage
	var diffIDs []string
	for i, l := range layers {
		img.layers = append(img.layers, l)
		diffIDs = append(diffIDs, "sha256:"+sha256Hex(tars[i]))
	}
	img.config = blob{mediaType: mediaTypeOCIConfig, data: mustJSON(map[string]any{
		"architecture": "amd64", "os": "linux",
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
	out := filepath.Join(t.TempDir(), "rootfs")
	// umoci reports its progress on stderr.
	if r := run(t, "", "umoci", "raw", "unpack", "--image", layout+":v1", out); r.code != 0 {
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
}
