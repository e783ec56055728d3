package integration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestImageFileIsItsManifest(t *testing.T) {
	t.Parallel()
	d := startNsfs(t)
	m := d.mnt
	img := newImage(41, "amd64", 1000, 3000)
	const ref = "docker.io/library/redis:latest"
	p := imagePath("default", ref)
	d.putImage(t, "default", ref, img)

	if got := mustRun(t, m, "cat", p); got != string(img.manifest.data) {
		t.Errorf("cat %s:\n got %q\nwant %q", p, got, img.manifest.data)
	}
	assertOutput(t, "sha256sum", mustRun(t, m, "sha256sum", p), img.manifest.hex()+"  "+p+"\n")
	assertOutput(t, "stat -c '%s %F'", mustRun(t, m, "stat", "-c", "%s %F", p),
		fmt.Sprintf("%d regular file\n", len(img.manifest.data)))
	assertOutput(t, "ls ns/default/images", mustRun(t, m, "ls", "ns/default/images"), lines("docker.io"))
	assertOutput(t, "ls ns/default/images/docker.io/library", mustRun(t, m, "ls", "ns/default/images/docker.io/library"), lines("redis:latest"))
	assertOutput(t, "find ns -type f -name 'redis*'", mustRun(t, m, "find", "ns", "-type", "f", "-name", "redis*"), lines(p))
	// The namespace holds the manifest, the config and the layers.
	assertOutput(t, "ls ns/default/blobs/sha256", mustRun(t, m, "ls", "ns/default/blobs/sha256"), lines(img.hexes()...))
	// The manifest is also readable as a blob, byte for byte.
	assertOutput(t, "sha256sum of the manifest blob", mustRun(t, m, "sha256sum", blobPath("default", img.manifest.hex())),
		img.manifest.hex()+"  "+blobPath("default", img.manifest.hex())+"\n")
	if ingests := ingestFiles(t, d.root); len(ingests) != 0 {
		t.Errorf("ROOT/ingest holds %v", ingests)
	}
}

func TestImageMtimeIsItsUpdateTime(t *testing.T) {
	t.Parallel()
	d := startNsfs(t)
	m := d.mnt
	img1, img2 := newImage(42, "amd64", 100), newImage(43, "amd64", 100)
	d.putBlob(t, "default", img1.config)
	d.putBlob(t, "default", img1.layers[0])
	d.putBlob(t, "default", img2.config)
	d.putBlob(t, "default", img2.layers[0])
	p := imagePath("default", "app:v1")

	t0 := time.Now().Truncate(time.Second)
	d.putManifest(t, "default", "app:v1", img1.manifest.data)
	t1 := time.Now()
	mtime1 := statMtime(t, d, p)
	if mtime1.Before(t0) || mtime1.After(t1) {
		t.Errorf("mtime %v of a new image is not its creation time (between %v and %v)", mtime1, t0, t1)
	}
	// Reading does not update the image.
	mustRun(t, m, "cat", p)
	if got := statMtime(t, d, p); !got.Equal(mtime1) {
		t.Errorf("cat changed the mtime from %v to %v", mtime1, got)
	}

	// Let the clock pass a whole second so the change shows at any precision.
	for deadline := time.Now().Add(3 * time.Second); !time.Now().Truncate(time.Second).After(mtime1); {
		if time.Now().After(deadline) {
			t.Fatal("clock did not advance")
		}
		time.Sleep(20 * time.Millisecond)
	}
	t2 := time.Now().Truncate(time.Second)
	mustRun(t, m, "cp", writeTemp(t, "m2", img2.manifest.data), p)
	t3 := time.Now()
	mtime2 := statMtime(t, d, p)
	if !mtime2.After(mtime1) || mtime2.Before(t2) || mtime2.After(t3) {
		t.Errorf("mtime after replace = %v, want after %v and between %v and %v", mtime2, mtime1, t2, t3)
	}
	assertOutput(t, "stat -c %Y after replace", mustRun(t, m, "stat", "-c", "%Y", p), fmt.Sprintf("%d\n", mtime2.Unix()))
	assertOutput(t, "sha256sum after replace", mustRun(t, m, "sha256sum", p), img2.manifest.hex()+"  "+p+"\n")
	assertOutput(t, "stat -c %s after replace", mustRun(t, m, "stat", "-c", "%s", p), fmt.Sprintf("%d\n", len(img2.manifest.data)))
	// The old target's blobs that no other image references are released.
	assertOutput(t, "ls blobs/sha256 after replace", mustRun(t, m, "ls", "ns/default/blobs/sha256"), lines(img2.hexes()...))
}

func statMtime(t *testing.T, d *daemon, rel string) time.Time {
	t.Helper()
	fi, err := os.Stat(d.path(rel))
	if err != nil {
		t.Fatal(err)
	}
	return fi.ModTime()
}

func TestDockerManifestsAndIndexes(t *testing.T) {
	t.Parallel()
	d := startNsfs(t)
	m := d.mnt
	mustRun(t, m, "mkdir", "ns/foo", "ns/bar")

	docker := newDockerImage(44, "amd64", 1500)
	d.putImage(t, "default", "docker:v1", docker)
	assertOutput(t, "sha256sum of a Docker schema 2 image", mustRun(t, m, "sha256sum", imagePath("default", "docker:v1")),
		docker.manifest.hex()+"  "+imagePath("default", "docker:v1")+"\n")

	// An index whose children nobody has is accepted: only the index is held.
	amd, arm := newImage(45, "amd64", 700), newImage(46, "arm64", 800)
	idx := newIndex(amd, arm)
	d.putManifest(t, "foo", "multi:latest", idx.data)
	assertOutput(t, "sha256sum of the index", mustRun(t, m, "sha256sum", imagePath("foo", "multi:latest")),
		idx.hex()+"  "+imagePath("foo", "multi:latest")+"\n")
	assertOutput(t, "ls ns/foo/blobs/sha256 (an index with absent children)", mustRun(t, m, "ls", "ns/foo/blobs/sha256"), lines(idx.hex()))

	// With one platform present, an index claims it recursively (shared).
	d.putBlob(t, "default", amd.config)
	d.putBlob(t, "default", amd.layers[0])
	d.putBlob(t, "default", amd.manifest)
	d.putManifest(t, "bar", "multi:latest", idx.data)
	assertOutput(t, "ls ns/bar/blobs/sha256 (index, present child and its blobs)", mustRun(t, m, "ls", "ns/bar/blobs/sha256"),
		lines(sortStrings(append(amd.hexes(), idx.hex()))...))
	mustFail(t, m, "Device or resource busy", "rm", blobPath("bar", amd.layers[0].hex()))

	// A Docker manifest list over Docker manifests.
	dockerArm := newDockerImage(47, "arm64", 900)
	list := newDockerList(docker, dockerArm)
	d.putManifest(t, "default", "list:v1", list.data)
	assertOutput(t, "sha256sum of the Docker list", mustRun(t, m, "sha256sum", imagePath("default", "list:v1")),
		list.hex()+"  "+imagePath("default", "list:v1")+"\n")
}

func TestInvalidManifestsAreRefusedAndCreateNothing(t *testing.T) {
	t.Parallel()
	d := startNsfs(t)
	m := d.mnt
	img := newImage(48, "amd64", 600)
	d.putBlob(t, "default", img.config)
	d.putBlob(t, "default", img.layers[0])
	mustRun(t, m, "mkdir", "-p", "ns/default/images/docker.io/library")

	var good manifest
	if err := json.Unmarshal(img.manifest.data, &good); err != nil {
		t.Fatal(err)
	}
	variant := func(change func(*manifest)) []byte {
		v := good
		cfg := *good.Config
		v.Config = &cfg
		v.Layers = append([]descriptor(nil), good.Layers...)
		change(&v)
		return mustJSON(v)
	}
	cases := []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"not JSON", []byte("hello, world\n")},
		{"truncated JSON", img.manifest.data[:len(img.manifest.data)-1]},
		{"a JSON array", []byte(`[]`)},
		{"an empty object", []byte(`{}`)},
		{"a config blob", img.config.data},
		{"unknown media type", variant(func(v *manifest) { v.MediaType = "text/plain" })},
		{"schema version 1", variant(func(v *manifest) { v.SchemaVersion = 1 })},
		{"no config", variant(func(v *manifest) { v.Config = nil })},
		{"malformed config digest", variant(func(v *manifest) { v.Config.Digest = "sha256:xyz" })},
		{"uppercase layer digest", variant(func(v *manifest) {
			v.Layers[0].Digest = "sha256:" + strings.ToUpper(img.layers[0].hex())
		})},
		{"wrong config size", variant(func(v *manifest) { v.Config.Size++ })},
		{"wrong layer size", variant(func(v *manifest) { v.Layers[0].Size-- })},
		{"index with a malformed child digest", mustJSON(index{SchemaVersion: 2, MediaType: mediaTypeOCIIndex,
			Manifests: []descriptor{{MediaType: mediaTypeOCIManifest, Digest: "sha256:1234", Size: 10}}})},
	}
	for _, c := range cases {
		ref := "docker.io/library/bad:" + strings.ReplaceAll(c.name, " ", "-")
		before := d.state(t)
		mustFail(t, m, "Invalid argument", "cp", writeTemp(t, "manifest", c.data), imagePath("default", ref))
		d.assertUnchanged(t, "writing "+c.name+" as an image", before)
		mustFail(t, m, "No such file or directory", "stat", imagePath("default", ref))
	}
	assertOutput(t, "ls of the prefix directory", mustRun(t, m, "ls", "ns/default/images/docker.io/library"), "")
	assertOutput(t, "ls ns/default/blobs/sha256", mustRun(t, m, "ls", "ns/default/blobs/sha256"),
		lines(sortStrings([]string{img.config.hex(), img.layers[0].hex()})...))

	// The same bytes are fine once they name what they should.
	d.putManifest(t, "default", "docker.io/library/good:v1", img.manifest.data)
	// Replacing a good image with a bad manifest keeps the good one.
	before := d.state(t)
	mustFail(t, m, "Invalid argument", "cp", writeTemp(t, "bad", []byte("{}")), imagePath("default", "docker.io/library/good:v1"))
	d.assertUnchanged(t, "replacing an image with a bad manifest", before)
}

// A manifest may name blobs the namespace cannot see yet (containerd's
// rule): the image is incomplete, holds what is there, and claims the rest
// as it arrives; nsfs images check says what is missing.
func TestManifestNamingAnUnknownBlobIsIncomplete(t *testing.T) {
	t.Parallel()
	d := startNsfs(t)
	m := d.mnt
	img := newImage(49, "amd64", 600, 700)
	// Everything but the second layer: nobody has that.
	d.putBlob(t, "default", img.config)
	d.putBlob(t, "default", img.layers[0])

	mustRun(t, m, "cp", writeTemp(t, "manifest", img.manifest.data), imagePath("default", "app:v1"))
	assertOutput(t, "sha256sum", mustRun(t, m, "sha256sum", imagePath("default", "app:v1")),
		img.manifest.hex()+"  "+imagePath("default", "app:v1")+"\n")
	assertOutput(t, "ls blobs/sha256 of the incomplete image", mustRun(t, m, "ls", blobPath("default", "")),
		lines(sortStrings([]string{img.config.hex(), img.layers[0].hex(), img.manifest.hex()})...))
	mustFail(t, m, "No such file or directory", "stat", blobPath("default", img.layers[1].hex()))

	// The layer arrives: the image claims it (rm is EBUSY now).
	d.putBlob(t, "default", img.layers[1])
	mustFail(t, m, "Device or resource busy", "rm", blobPath("default", img.layers[1].hex()))
	assertOutput(t, "ls blobs/sha256 of the complete image", mustRun(t, m, "ls", blobPath("default", "")), lines(img.hexes()...))
	mustRun(t, m, "rm", imagePath("default", "app:v1"))
	assertOutput(t, "ls blobs/sha256 after rm of the image", mustRun(t, m, "ls", blobPath("default", "")), "")
}

func TestManifestSizeLimit(t *testing.T) {
	t.Parallel()
	d := startNsfs(t)
	m := d.mnt
	img := newImage(50, "amd64", 100)
	d.putBlob(t, "default", img.config)
	d.putBlob(t, "default", img.layers[0])

	before := d.state(t)
	// Whitespace may begin a manifest: only the size is wrong (random bytes
	// would be EINVAL at the first write).
	mustFail(t, m, "File too large", "cp", writeTemp(t, "big", bytes.Repeat([]byte(" "), 5<<20)), imagePath("default", "big"))
	d.assertUnchanged(t, "a 5 MiB image", before)
	mustFail(t, m, "No such file or directory", "stat", imagePath("default", "big"))

	// A valid manifest of exactly 4 MiB is accepted; one byte more is not.
	exact := paddedManifest(t, img, 4<<20)
	d.putManifest(t, "default", "exact:4MiB", exact)
	assertOutput(t, "stat -c %s of the 4 MiB image", mustRun(t, m, "stat", "-c", "%s", imagePath("default", "exact:4MiB")), "4194304\n")
	assertOutput(t, "sha256sum of the 4 MiB image", mustRun(t, m, "sha256sum", imagePath("default", "exact:4MiB")),
		sha256Hex(exact)+"  "+imagePath("default", "exact:4MiB")+"\n")
	before = d.state(t)
	mustFail(t, m, "File too large", "cp", writeTemp(t, "over", paddedManifest(t, img, 4<<20+1)), imagePath("default", "over"))
	d.assertUnchanged(t, "a manifest of 4 MiB + 1 byte", before)
}

// paddedManifest is img's manifest with an annotation that makes it size bytes.
func paddedManifest(t *testing.T, img testImage, size int) []byte {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal(img.manifest.data, &v); err != nil {
		t.Fatal(err)
	}
	v["annotations"] = map[string]string{"pad": ""}
	base := len(mustJSON(v))
	v["annotations"] = map[string]string{"pad": strings.Repeat("p", size-base)}
	out := mustJSON(v)
	if len(out) != size {
		t.Fatalf("padded manifest is %d bytes, want %d", len(out), size)
	}
	return out
}

func TestImageRefsArePaths(t *testing.T) {
	t.Parallel()
	d := startNsfs(t)
	m := d.mnt
	img := newImage(52, "amd64", 100)
	d.putImage(t, "default", "docker.io/library/app:v1", img)
	src := writeTemp(t, "manifest", img.manifest.data)

	// mkdir -p makes ref prefixes; they stay until rmdir.
	mustRun(t, m, "mkdir", "-p", "ns/default/images/quay.io/org/team")
	assertOutput(t, "ls ns/default/images", mustRun(t, m, "ls", "ns/default/images"), lines("docker.io", "quay.io"))
	mustRun(t, m, "cp", src, imagePath("default", "quay.io/org/team/app@sha256:"+img.manifest.hex()))
	mustFail(t, m, "Directory not empty", "rmdir", "ns/default/images/quay.io/org/team")
	mustRun(t, m, "rm", imagePath("default", "quay.io/org/team/app@sha256:"+img.manifest.hex()))
	assertOutput(t, "ls of an emptied prefix", mustRun(t, m, "ls", "ns/default/images/quay.io/org/team"), "")
	mustRun(t, m, "rmdir", "ns/default/images/quay.io/org/team", "ns/default/images/quay.io/org", "ns/default/images/quay.io")
	assertOutput(t, "ls ns/default/images after rmdir", mustRun(t, m, "ls", "ns/default/images"), lines("docker.io"))
	mustFail(t, m, "File exists", "mkdir", "ns/default/images/docker.io")
	mustFail(t, m, "File exists", "mkdir", imagePath("default", "docker.io/library/app:v1"))
	mustFail(t, m, "Directory not empty", "rmdir", "ns/default/images/docker.io")
	mustFail(t, m, "Not a directory", "rmdir", imagePath("default", "docker.io/library/app:v1"))
	mustFail(t, m, "Is a directory", "rm", "ns/default/images/docker.io")

	// A component that is an image is not a directory.
	before := d.state(t)
	mustFail(t, m, "Not a directory", "cp", src, imagePath("default", "docker.io/library/app:v1/x"))
	mustFail(t, m, "Not a directory", "mkdir", imagePath("default", "docker.io/library/app:v1/x"))
	d.assertUnchanged(t, "refs below an image", before)

	// 255-byte components are fine; 256 is too long.
	c255 := strings.Repeat("c", 255)
	mustRun(t, m, "mkdir", "-p", "ns/default/images/"+c255)
	mustRun(t, m, "cp", src, imagePath("default", c255+"/"+c255))
	assertOutput(t, "sha256sum of a ref with 255-byte components", mustRun(t, m, "sha256sum", imagePath("default", c255+"/"+c255)),
		img.manifest.hex()+"  "+imagePath("default", c255+"/"+c255)+"\n")
	before = d.state(t)
	mustFail(t, m, "File name too long", "cp", src, imagePath("default", c255+"/"+strings.Repeat("c", 256)))
	d.assertUnchanged(t, "a 256-byte ref component", before)

	// A whole ref over 4096 bytes is too long even when each part is fine:
	// 16 components of 250 bytes (4015 bytes with slashes), then 100 more.
	c250 := strings.Repeat("d", 250)
	var script strings.Builder
	script.WriteString("set -e; cd ns/default/images; ")
	for i := 0; i < 16; i++ {
		fmt.Fprintf(&script, "mkdir %s; cd %s; ", c250, c250)
	}
	mustSh(t, m, script.String())
	// The mount path is over PATH_MAX now: compare the disk and the listing
	// of the deepest directory instead of walking the mount.
	deepest := strings.Replace(script.String(), "mkdir "+c250+"; ", "", -1)
	diskBefore := d.diskState(t)
	r := sh(t, m, deepest+"cp "+src+" "+strings.Repeat("e", 100))
	if r.code == 0 || !strings.Contains(r.stderr, "File name too long") {
		t.Errorf("writing a 4116-byte ref: want \"File name too long\", got %s", r)
	}
	assertOutput(t, "ls of the deepest prefix", mustSh(t, m, deepest+"ls -A"), "")
	if got := d.diskState(t); got != diskBefore {
		t.Errorf("a ref over 4096 bytes changed the disk:\n%s", lineDiff(diskBefore, got))
	}
	mustRun(t, m, "rm", "-r", "ns/default/images/"+c250)
}

func TestMvImage(t *testing.T) {
	t.Parallel()
	d := startNsfs(t)
	m := d.mnt
	a, b := newImage(53, "amd64", 100), newImage(54, "amd64", 200)
	d.putImage(t, "default", "a", a)
	d.putImage(t, "default", "b", b)
	inoA := d.inode(t, imagePath("default", "a"))

	// Rename to a new name: same image (same inode), old name gone.
	mustRun(t, m, "mv", imagePath("default", "a"), imagePath("default", "a2"))
	mustFail(t, m, "No such file or directory", "stat", imagePath("default", "a"))
	assertOutput(t, "sha256sum after mv", mustRun(t, m, "sha256sum", imagePath("default", "a2")), a.manifest.hex()+"  "+imagePath("default", "a2")+"\n")
	if got := d.inode(t, imagePath("default", "a2")); got != inoA {
		t.Errorf("inode after mv = %s, want %s (a rename keeps the image)", got, inoA)
	}

	// Rename over an existing image replaces it; b's blobs are released.
	mustRun(t, m, "mv", imagePath("default", "a2"), imagePath("default", "b"))
	assertOutput(t, "ls ns/default/images", mustRun(t, m, "ls", "ns/default/images"), lines("b"))
	assertOutput(t, "sha256sum of the replaced b", mustRun(t, m, "sha256sum", imagePath("default", "b")), a.manifest.hex()+"  "+imagePath("default", "b")+"\n")
	if got := d.inode(t, imagePath("default", "b")); got != inoA {
		t.Errorf("inode of b after mv a2 b = %s, want %s", got, inoA)
	}
	assertOutput(t, "ls blobs/sha256 after the replace", mustRun(t, m, "ls", "ns/default/blobs/sha256"), lines(a.hexes()...))

	// Into a prefix directory and back.
	mustRun(t, m, "mkdir", "-p", "ns/default/images/docker.io/library")
	mustRun(t, m, "mv", imagePath("default", "b"), imagePath("default", "docker.io/library/b"))
	assertOutput(t, "find images -type f", mustRun(t, m, "find", "ns/default/images", "-type", "f"), lines(imagePath("default", "docker.io/library/b")))

	// Across namespaces rename is EXDEV, so mv falls back to copy + rm.
	mustRun(t, m, "mkdir", "ns/foo")
	mustRun(t, m, "mv", imagePath("default", "docker.io/library/b"), imagePath("foo", "b"))
	assertOutput(t, "sha256sum in foo after mv", mustRun(t, m, "sha256sum", imagePath("foo", "b")), a.manifest.hex()+"  "+imagePath("foo", "b")+"\n")
	mustFail(t, m, "No such file or directory", "stat", imagePath("default", "docker.io/library/b"))
	assertOutput(t, "ls ns/foo/blobs/sha256", mustRun(t, m, "ls", "ns/foo/blobs/sha256"), lines(a.hexes()...))
	assertOutput(t, "ls ns/default/blobs/sha256 (released with the image)", mustRun(t, m, "ls", "ns/default/blobs/sha256"), "")
	if got := sortedKeys(rootBlobFiles(t, d.root)); strings.Join(got, " ") != strings.Join(a.hexes(), " ") {
		t.Errorf("ROOT/blobs/sha256 = %v, want a's blobs %v", got, a.hexes())
	}

	before := d.state(t)
	mustFail(t, m, "No such file or directory", "mv", imagePath("default", "nothing"), imagePath("default", "x"))
	d.assertUnchanged(t, "mv of a missing image", before)
}

func TestLnImage(t *testing.T) {
	t.Parallel()
	d := startNsfs(t)
	m := d.mnt
	img := newImage(55, "amd64", 100)
	other := newImage(56, "amd64", 100)
	d.putImage(t, "default", "app:v1", img)
	d.putImage(t, "default", "other:v1", other)

	mustRun(t, m, "ln", imagePath("default", "app:v1"), imagePath("default", "app:latest"))
	assertOutput(t, "sha256sum of both tags", mustRun(t, m, "sha256sum", imagePath("default", "app:v1"), imagePath("default", "app:latest")),
		img.manifest.hex()+"  "+imagePath("default", "app:v1")+"\n"+img.manifest.hex()+"  "+imagePath("default", "app:latest")+"\n")
	if a, b := d.inode(t, imagePath("default", "app:v1")), d.inode(t, imagePath("default", "app:latest")); a == b {
		t.Errorf("a tag is a new image, but both have inode %s", a)
	}

	before := d.state(t)
	mustFail(t, m, "File exists", "ln", imagePath("default", "app:v1"), imagePath("default", "app:latest"))
	mustFail(t, m, "File exists", "ln", imagePath("default", "app:v1"), imagePath("default", "other:v1"))
	d.assertUnchanged(t, "ln onto existing images", before)
	mustRun(t, m, "mkdir", "ns/foo")
	before = d.state(t)
	mustFail(t, m, "Invalid cross-device link", "ln", imagePath("default", "app:v1"), imagePath("foo", "app:v1"))
	mustFail(t, m, "No such file or directory", "ln", imagePath("default", "nothing"), imagePath("default", "x"))
	d.assertUnchanged(t, "refused ln", before)

	// Removing one tag keeps the blobs the other still references.
	mustRun(t, m, "rm", imagePath("default", "app:v1"))
	assertOutput(t, "ls blobs/sha256 with one tag left", mustRun(t, m, "ls", "ns/default/blobs/sha256"),
		lines(sortStrings(append(img.hexes(), other.hexes()...))...))
	mustRun(t, m, "rm", imagePath("default", "app:latest"))
	assertOutput(t, "ls blobs/sha256 with no tag left", mustRun(t, m, "ls", "ns/default/blobs/sha256"), lines(other.hexes()...))
}

func TestRmImage(t *testing.T) {
	t.Parallel()
	d := startNsfs(t)
	m := d.mnt
	// Two images sharing a layer: removing one keeps the shared layer.
	base := newImage(57, "amd64", 1000)
	img1 := newImage(58, "amd64", 200)
	img2 := newImage(59, "amd64", 300)
	withBase := func(img testImage) testImage {
		img.layers = append([]blob{base.layers[0]}, img.layers...)
		var mf manifest
		if err := json.Unmarshal(img.manifest.data, &mf); err != nil {
			t.Fatal(err)
		}
		mf.Layers = append([]descriptor{base.layers[0].descriptor()}, mf.Layers...)
		img.manifest = blob{mediaType: mediaTypeOCIManifest, data: mustJSON(mf)}
		return img
	}
	img1, img2 = withBase(img1), withBase(img2)
	d.putImage(t, "default", "one", img1)
	d.putImage(t, "default", "two", img2)

	mustRun(t, m, "rm", imagePath("default", "one"))
	mustFail(t, m, "No such file or directory", "stat", imagePath("default", "one"))
	assertOutput(t, "ls blobs/sha256 after rm one", mustRun(t, m, "ls", "ns/default/blobs/sha256"), lines(img2.hexes()...))
	if got := sortedKeys(rootBlobFiles(t, d.root)); strings.Join(got, " ") != strings.Join(img2.hexes(), " ") {
		t.Errorf("ROOT/blobs/sha256 after rm one = %v, want %v", got, img2.hexes())
	}
	before := d.state(t)
	mustFail(t, m, "No such file or directory", "rm", imagePath("default", "one"))
	d.assertUnchanged(t, "rm of a removed image", before)

	// rm of the last image, then at once rmdir.
	mustRun(t, m, "mkdir", "ns/foo")
	mustRun(t, m, "cp", imagePath("default", "two"), imagePath("foo", "two"))
	mustRun(t, m, "rm", imagePath("default", "two"))
	mustRun(t, m, "rmdir", "ns/default")
	if got := sortedKeys(rootBlobFiles(t, d.root)); strings.Join(got, " ") != strings.Join(img2.hexes(), " ") {
		t.Errorf("ROOT/blobs/sha256 while foo holds two = %v, want %v", got, img2.hexes())
	}
	mustRun(t, m, "rm", imagePath("foo", "two"))
	mustRun(t, m, "rmdir", "ns/foo")
	if files := rootBlobFiles(t, d.root); len(files) != 0 {
		t.Errorf("ROOT/blobs/sha256 holds %v after every namespace dropped the blobs", sortedKeys(files))
	}
	assertOutput(t, "ls ns", mustRun(t, m, "ls", "ns"), "")
}

// TestEveryNodeListsWithoutErrors runs ls -l and getfattr -d over a store
// with one of everything: no tool may print an error line.
func TestEveryNodeListsWithoutErrors(t *testing.T) {
	t.Parallel()
	d := startNsfs(t)
	m := d.mnt
	mustRun(t, m, "mkdir", "ns/foo", "ns/empty")
	mustRun(t, m, "setfattr", "-n", "user.team", "-v", "a", "ns/foo")
	amd, arm := newImage(60, "amd64", 300), newImage(61, "arm64", 400)
	d.putImage(t, "foo", "docker.io/library/app:v1", amd)
	d.putManifest(t, "foo", "docker.io/library/multi:v1", newIndex(amd, arm).data)
	d.putImage(t, "default", "docker:v1", newDockerImage(62, "amd64", 100))
	mustRun(t, m, "setfattr", "-n", "user.note", "-v", "x", imagePath("foo", "docker.io/library/app:v1"))
	mustRun(t, m, "setfattr", "-n", "user.note", "-v", "y", blobPath("foo", amd.config.hex()))
	d.putBlob(t, "default", blob{data: randomBytes(63, 50)})
	mustRun(t, m, "mkdir", "-p", "ns/foo/images/quay.io/empty")

	out := mustRun(t, m, "ls", "-lRa", ".")
	for _, want := range []string{"ns", "foo", "app:v1", "multi:v1", amd.config.hex(), "quay.io"} {
		if !strings.Contains(out, want) {
			t.Errorf("ls -lRa does not show %s:\n%s", want, out)
		}
	}
	if strings.Contains(out, "?") {
		t.Errorf("ls -lRa printed an unknown field (?):\n%s", out)
	}
	out = mustRun(t, m, "find", ".", "-exec", "getfattr", "-d", "{}", "+")
	assertOutput(t, "find . -exec getfattr -d {} +", out,
		"# file: ns/foo\nuser.team=\"a\"\n\n"+
			"# file: "+imagePath("foo", "docker.io/library/app:v1")+"\nuser.note=\"x\"\n\n"+
			"# file: "+blobPath("foo", amd.config.hex())+"\nuser.note=\"y\"\n\n")
	mustRun(t, m, "find", ".", "-exec", "getfattr", "-d", "-m", "-", "{}", "+")
	mustRun(t, m, "find", ".", "-exec", "stat", "{}", "+")
	mustRun(t, m, "find", ".", "-type", "f", "-exec", "cat", "{}", "+")
	mustRun(t, m, "du", "-a", ".")
	// Sizes in ls -l match the bytes.
	fields := strings.Fields(mustRun(t, m, "ls", "-l", imagePath("foo", "docker.io/library/app:v1")))
	if len(fields) < 5 || fields[4] != strconv.Itoa(len(amd.manifest.data)) || !strings.HasPrefix(fields[0], "-") {
		t.Errorf("ls -l of the image = %v, want a regular file of %d bytes", fields, len(amd.manifest.data))
	}
	if data, err := os.ReadFile(filepath.Join(m, blobPath("foo", amd.layers[0].hex()))); err != nil || !bytes.Equal(data, amd.layers[0].data) {
		t.Errorf("reading the layer through foo: %v (equal=%v)", err, bytes.Equal(data, amd.layers[0].data))
	}
}
