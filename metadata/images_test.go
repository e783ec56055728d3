package metadata

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/nsfs/nsfs/imagegraph"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

type fileID struct {
	ino   uint64
	mtime int64
}

func statFile(t *testing.T, db *DB, d digest.Digest) fileID {
	t.Helper()
	fi, err := os.Stat(blobPath(db, d))
	if err != nil {
		t.Fatalf("blob file %s: %v", d, err)
	}
	return fileID{fi.Sys().(*syscall.Stat_t).Ino, fi.ModTime().UnixNano()}
}

// The containerd story the README tells: an image pulled into default, copied into foo
// without moving bytes, removed from foo, foo removed; default cannot be.
func TestSeedStory(t *testing.T) {
	db := openTestDB(t, Options{})
	const ref = "docker.io/library/redis:latest"
	img := seedImage(t, db, "default", "redis")
	got, err := db.Images().Put(ImageWrite{Namespace: "default", Ref: ref, Manifest: img.manifest})
	if err != nil {
		t.Fatal(err)
	}
	want := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: img.digest, Size: int64(len(img.manifest))}
	if got.Target.MediaType != want.MediaType || got.Target.Digest != want.Digest || got.Target.Size != want.Size {
		t.Fatalf("target %+v, want %+v", got.Target, want)
	}
	if got.ID == 0 || got.Name != ref || got.Namespace != "default" {
		t.Fatalf("image %+v", got)
	}
	// The image's bytes are the manifest, stored as a blob.
	f, err := db.Content().Open("default", img.digest)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	buf.ReadFrom(f)
	f.Close()
	if !bytes.Equal(buf.Bytes(), img.manifest) {
		t.Fatal("the manifest blob does not hold the manifest bytes")
	}
	files := map[digest.Digest]fileID{}
	for _, d := range []digest.Digest{img.digest, img.config.Digest, img.layer.Digest} {
		files[d] = statFile(t, db, d)
	}

	if _, err := db.Namespaces().Create("foo", nil); err != nil {
		t.Fatal(err)
	}
	fooImg, err := db.Images().Put(ImageWrite{Namespace: "foo", Ref: ref, Manifest: img.manifest})
	if err != nil {
		t.Fatal(err)
	}
	if fooImg.ID == got.ID || fooImg.Target.Digest != img.digest {
		t.Fatalf("image in foo %+v", fooImg)
	}
	for d, before := range files {
		if after := statFile(t, db, d); after != before {
			t.Fatalf("blob %s was rewritten by the copy into foo: %v then %v", d, before, after)
		}
	}
	wantHeld := sortedDigests(img.digest, img.config.Digest, img.layer.Digest)
	if held := heldDigests(t, db, "foo"); !equalDigests(held, wantHeld) {
		t.Fatalf("foo holds %v, want %v", held, wantHeld)
	}
	for _, d := range wantHeld {
		b, err := db.GetBlob("foo", d)
		if err != nil || !b.Held || !b.InUse {
			t.Fatalf("foo's blob %s: %+v, %v", d, b, err)
		}
	}
	checkInvariants(t, db)

	if err := db.Images().Delete("foo", ref); err != nil {
		t.Fatal(err)
	}
	if held := heldDigests(t, db, "foo"); len(held) != 0 {
		t.Fatalf("foo still holds %v after rm of its only image", held)
	}
	for d := range files {
		if !fileExists(db, d) {
			t.Fatalf("blob %s left the disk though default holds it", d)
		}
	}
	if _, err := db.Namespaces().Delete("foo"); err != nil {
		t.Fatalf("rmdir foo: %v", err)
	}
	_, err = db.Namespaces().Delete("default")
	wantKind(t, "rmdir default", err, IsNotEmpty, "ErrNotEmpty")
	if want := `namespace "default" must be empty, but it still has images, blobs: not empty`; err.Error() != want {
		t.Fatalf("message %q, want %q", err, want)
	}
	checkInvariants(t, db)
}

func TestDeleteImageDropsBlobs(t *testing.T) {
	db := openTestDB(t, Options{})
	a := seedImage(t, db, "default", "a")
	b := seedImage(t, db, "default", "b")
	// b shares a's layer.
	bm := manifestJSON(b.config, a.layer)
	var released []digest.Digest
	for _, w := range []ImageWrite{{Namespace: "default", Ref: "a", Manifest: a.manifest}, {Namespace: "default", Ref: "b", Manifest: bm}} {
		released = append(released, releasedBy(t, db, "default", func() error {
			_, err := db.Images().Put(w)
			return err
		})...)
	}

	var err error
	released = append(released, releasedBy(t, db, "default", func() error {
		err = db.Content().Delete("default", a.layer.Digest)
		return nil
	})...)
	wantKind(t, "rm a layer two images use", err, IsInUse, "ErrInUse")
	if !strings.Contains(err.Error(), string(a.layer.Digest)) {
		t.Fatalf("message %q does not name the blob", err)
	}

	released = append(released, releasedBy(t, db, "default", func() error { return db.Images().Delete("default", "a") })...)
	// a's manifest and config go (from the namespace and, as nobody else
	// holds them, from the disk); the shared layer stays, still in use.
	for _, d := range []digest.Digest{a.digest, a.config.Digest} {
		if _, err := db.GetBlob("default", d); !IsNotFound(err) {
			t.Fatalf("blob %s of the deleted image: %v, want ErrNotFound", d, err)
		}
		if fileExists(db, d) {
			t.Fatalf("blob %s is still on disk", d)
		}
	}
	if bl, err := db.GetBlob("default", a.layer.Digest); err != nil || !bl.InUse {
		t.Fatalf("shared layer after rm a: %+v, %v", bl, err)
	}
	// b's layer written by default but never used by an image stays.
	if bl, err := db.GetBlob("default", b.layer.Digest); err != nil || bl.InUse || !bl.Held {
		t.Fatalf("unused blob b.layer: %+v, %v", bl, err)
	}
	if want := sortedDigests(a.config.Digest, a.digest); !equalDigests(sortedDigests(released...), want) {
		t.Fatalf("released %v, want %v", released, want)
	}

	wantKind(t, "rm image a twice", db.Images().Delete("default", "a"), IsNotFound, "ErrNotFound")
	if err := db.Content().Delete("default", b.layer.Digest); err != nil {
		t.Fatal(err)
	}
	wantKind(t, "rm blob twice", db.Content().Delete("default", b.layer.Digest), IsNotFound, "ErrNotFound")
	if fileExists(db, b.layer.Digest) {
		t.Fatal("a dropped blob's file stayed")
	}
	if err := db.Images().Delete("default", "b"); err != nil {
		t.Fatal(err)
	}
	if held := heldDigests(t, db, "default"); len(held) != 0 {
		t.Fatalf("default still holds %v", held)
	}
	if files := blobFiles(t, db); len(files) != 0 {
		t.Fatalf("files left: %v", files)
	}
	if _, err := db.Namespaces().Delete("default"); err != nil {
		t.Fatal(err)
	}
	checkInvariants(t, db)
}

func sortLines(s string) string {
	lines := strings.Split(s, "\n")
	for i := range lines {
		for j := i + 1; j < len(lines); j++ {
			if lines[j] < lines[i] {
				lines[i], lines[j] = lines[j], lines[i]
			}
		}
	}
	return strings.Join(lines, "\n")
}

func TestIsolatedSharing(t *testing.T) {
	db := openTestDB(t, Options{Sharing: SharingIsolated})
	for _, ns := range []string{"a", "b"} {
		if _, err := db.Namespaces().Create(ns, nil); err != nil {
			t.Fatal(err)
		}
	}
	img := seedImage(t, db, "a", "x")
	if _, err := db.GetBlob("b", img.layer.Digest); !IsNotFound(err) {
		t.Fatalf("b sees a's blob: %v", err)
	}
	if _, err := db.Content().Open("b", img.layer.Digest); !IsNotFound(err) {
		t.Fatalf("b opens a's blob: %v", err)
	}
	// b may name a's blobs: the image is incomplete, and naming them
	// grants no read of them.
	if _, err := db.Images().Put(ImageWrite{Namespace: "b", Ref: "x", Manifest: img.manifest}); err != nil {
		t.Fatalf("b puts an image of blobs it cannot see: %v", err)
	}
	for _, d := range []digest.Digest{img.config.Digest, img.layer.Digest} {
		if _, err := db.GetBlob("b", d); !IsNotFound(err) {
			t.Fatalf("b sees a's blob %s once its image names it: %v", d, err)
		}
		if _, err := db.Content().Open("b", d); !IsNotFound(err) {
			t.Fatalf("b opens a's blob %s once its image names it: %v", d, err)
		}
	}
	if got := heldDigests(t, db, "b"); len(got) != 1 {
		t.Fatalf("b holds %v, want only the manifest", got)
	}
	checkInvariants(t, db)

	// b may send the bytes itself: verified, no second file, and its
	// image claims the blob then.
	layerFile := statFile(t, db, img.layer.Digest)
	mustWriteBlob(t, db, "b", []byte("layer bytes of x"))
	if statFile(t, db, img.layer.Digest) != layerFile {
		t.Fatal("the existing blob file was replaced")
	}
	if b, err := db.GetBlob("b", img.layer.Digest); err != nil || !b.InUse {
		t.Fatalf("the layer b sent: %+v %v, want claimed by its image", b, err)
	}
	if _, err := db.GetBlob("b", img.config.Digest); !IsNotFound(err) {
		t.Fatalf("b sees a's config: %v", err)
	}
	checkInvariants(t, db)

	// A shareable namespace's blobs are visible to all: b's image claims
	// the config at once.
	if err := db.Labels().Set(Object{Namespace: "a"}, ShareableLabel, "true", nil); err != nil {
		t.Fatal(err)
	}
	if b, err := db.GetBlob("b", img.config.Digest); err != nil || !b.InUse {
		t.Fatalf("a shareable namespace's blob wanted by b's image: %+v %v, want claimed", b, err)
	}
	if _, err := db.Content().Writer("b", 0, img.config.Digest); !IsExists(err) {
		t.Fatalf("ContentStore.Writer of a visible blob: %v, want ErrExists", err)
	}
	if _, err := db.Images().Put(ImageWrite{Namespace: "b", Ref: "x", Manifest: img.manifest}); err != nil {
		t.Fatal(err)
	}
	// Once b claims them they are b's, shareable label or not.
	if err := db.Labels().Set(Object{Namespace: "a"}, ShareableLabel, "", nil); err != nil {
		t.Fatal(err)
	}
	if b, err := db.GetBlob("b", img.config.Digest); err != nil || !b.Held {
		t.Fatalf("b's claimed blob: %+v %v", b, err)
	}
	checkInvariants(t, db)
}

func TestIndexWithAbsentChildren(t *testing.T) {
	db := openTestDB(t, Options{})
	amd64 := seedImage(t, db, "default", "amd64")
	manifestDesc := mustWriteBlob(t, db, "default", amd64.manifest)
	arm64 := manifestJSON(descriptor("c", []byte("arm config")), descriptor("l", []byte("arm layer")))
	index := indexJSON(manifestDesc, descriptor("", arm64))
	img, err := db.Images().Put(ImageWrite{Namespace: "default", Ref: "multi", Manifest: index})
	if err != nil {
		t.Fatal(err)
	}
	if img.Target.MediaType != ocispec.MediaTypeImageIndex || img.Target.Digest != digest.FromBytes(index) {
		t.Fatalf("target %+v", img.Target)
	}
	for _, d := range []digest.Digest{img.Target.Digest, manifestDesc.Digest, amd64.config.Digest, amd64.layer.Digest} {
		if b, err := db.GetBlob("default", d); err != nil || !b.InUse {
			t.Fatalf("blob %s of the index: %+v %v, want claimed", d, b, err)
		}
	}
	// Deleting the index drops everything below the present child.
	if err := db.Images().Delete("default", "multi"); err != nil {
		t.Fatal(err)
	}
	if held := heldDigests(t, db, "default"); len(held) != 0 {
		t.Fatalf("after rm of the index default holds %v", held)
	}

	// A lying size of a present child is refused.
	amd64 = seedImage(t, db, "default", "amd64")
	manifestDesc = mustWriteBlob(t, db, "default", amd64.manifest)
	manifestDesc.Size++
	_, err = db.Images().Put(ImageWrite{Namespace: "default", Ref: "multi", Manifest: indexJSON(manifestDesc)})
	wantKind(t, "index with a lying child size", err, IsInvalidArgument, "ErrInvalidArgument")
	checkInvariants(t, db)
}

func TestInvalidManifests(t *testing.T) {
	db := openTestDB(t, Options{})
	img := seedImage(t, db, "default", "x")
	if _, err := db.Namespaces().Create("other", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Images().Put(ImageWrite{Namespace: "default", Ref: "existing/image", Manifest: img.manifest}); err != nil {
		t.Fatal(err)
	}
	config := string(img.config.Digest)
	layer := string(img.layer.Digest)
	cfgSize := img.config.Size
	sha512 := "sha512:" + strings.Repeat("ab", 64)
	manifest := func(configDigest string, configSize int64, extra string) []byte {
		return []byte(fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
			"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":%q,"size":%d},
			"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":%q,"size":%d}%s]}`,
			configDigest, configSize, layer, img.layer.Size, extra))
	}
	missing := digest.FromString("never written")
	for _, tc := range []struct {
		name     string
		ns, ref  string
		data     []byte
		is       func(error) bool
		contains string
	}{
		{"not JSON", "", "", []byte("hello"), IsInvalidArgument, "not a JSON object"},
		{"JSON array", "", "", []byte(`[1,2]`), IsInvalidArgument, "not a JSON object"},
		{"broken JSON", "", "", []byte(`{"schemaVersion":2,`), IsInvalidArgument, "JSON"},
		{"no schemaVersion", "", "", []byte(`{"config":{}}`), IsInvalidArgument, "schemaVersion"},
		{"schemaVersion 1", "", "", []byte(`{"schemaVersion":1,"name":"x","fsLayers":[]}`), IsInvalidArgument, "schemaVersion 1"},
		{"unknown mediaType", "", "", []byte(`{"schemaVersion":2,"mediaType":"text/plain","config":{}}`), IsInvalidArgument, `"text/plain"`},
		{"neither", "", "", []byte(`{"schemaVersion":2}`), IsInvalidArgument, "neither"},
		{"missing config", "", "", []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","layers":[]}`), IsInvalidArgument, "no config"},
		{"index with a config", "", "", []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[],"config":{}}`), IsInvalidArgument, "index"},
		{"sha512 digest", "", "", manifest(sha512, 1, ""), IsInvalidArgument, "another algorithm"},
		{"malformed digest", "", "", manifest("sha256:XYZ", 1, ""), IsInvalidArgument, "config"},
		{"negative size", "", "", manifest(config, -1, ""), IsInvalidArgument, "negative size"},
		{"no mediaType", "", "", []byte(strings.Replace(string(manifest(config, cfgSize, "")), `"mediaType":"application/vnd.oci.image.config.v1+json",`, "", 1)), IsInvalidArgument, "no mediaType"},
		{"lying size", "", "", manifest(config, cfgSize+1, ""), IsInvalidArgument, "lying size"},
		{"over 4 MiB", "", "", append(manifest(config, cfgSize, ""), bytes.Repeat([]byte(" "), MaxManifestSize)...), IsTooLarge, "over the 4 MiB limit"},
		{"missing namespace", "nope", "", img.manifest, IsNotFound, `namespace "nope" not found`},
		{"ref below an image", "", "existing/image/x", img.manifest, IsNotDirectory, `"existing/image" is an image`},
		{"ref is a directory", "", "existing", img.manifest, IsIsDirectory, "is a directory"},
		{"bad ref", "", "a//b", img.manifest, IsInvalidArgument, "empty path component"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns, ref := tc.ns, tc.ref
			if ns == "" {
				ns = "default"
			}
			if ref == "" {
				ref = "img"
			}
			before := dump(t, db)
			_, err := db.Images().Put(ImageWrite{Namespace: ns, Ref: ref, Manifest: tc.data})
			if err == nil || !tc.is(err) {
				t.Fatalf("ImageStore.Put: %v, want the other kind", err)
			}
			if !strings.Contains(err.Error(), tc.contains) {
				t.Fatalf("message %q does not say %q", err, tc.contains)
			}
			if after := dump(t, db); after != before {
				t.Fatalf("a refused ImageStore.Put changed the store:\n%s\nthen\n%s", before, after)
			}
		})
	}

	// What is accepted: unknown fields, a foreign layer nobody holds, a
	// Docker manifest, no mediaType field.
	foreign := manifest(config, cfgSize, fmt.Sprintf(`,{"mediaType":"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip","digest":%q,"size":3,"urls":["https://example.com/x"]}],"annotations":{"a":"b"},"extra":[1`, missing))
	if _, err := db.Images().Put(ImageWrite{Namespace: "default", Ref: "foreign", Manifest: foreign}); err != nil {
		t.Fatalf("foreign layer: %v", err)
	}
	docker := bytes.Replace(img.manifest, []byte(ocispec.MediaTypeImageManifest), []byte(imagegraph.MediaTypeDockerManifest), 1)
	if got, err := db.Images().Put(ImageWrite{Namespace: "default", Ref: "docker", Manifest: docker}); err != nil || got.Target.MediaType != imagegraph.MediaTypeDockerManifest {
		t.Fatalf("docker manifest: %+v %v", got.Target, err)
	}
	plain := bytes.Replace(img.manifest, []byte(`"mediaType":"`+ocispec.MediaTypeImageManifest+`",`), nil, 1)
	if got, err := db.Images().Put(ImageWrite{Namespace: "default", Ref: "plain", Manifest: plain}); err != nil || got.Target.MediaType != ocispec.MediaTypeImageManifest {
		t.Fatalf("manifest without mediaType: %+v %v", got.Target, err)
	}
	checkInvariants(t, db)
}

func TestValidateRef(t *testing.T) {
	deep := strings.Repeat("a/", 10000) + "a"
	for _, tc := range []struct {
		ref string
		is  func(error) bool // nil: valid
	}{
		{"redis", nil},
		{"docker.io/library/redis:latest", nil},
		{"localhost:5000/a/b@sha256:" + strings.Repeat("0", 64), nil},
		{"a/..b/c.", nil},
		{strings.Repeat("a", 255), nil},
		{strings.Repeat("a/", 2047) + "ab", nil}, // 4096 bytes
		{strings.Repeat("a", 256), IsNameTooLong},
		{"x/" + strings.Repeat("a", 256), IsNameTooLong},
		{strings.Repeat("a/", 2048) + "a", IsNameTooLong}, // 4097 bytes
		{deep, IsNameTooLong},
		{"", IsInvalidArgument},
		{"a//b", IsInvalidArgument},
		{"/a", IsInvalidArgument},
		{"a/", IsInvalidArgument},
		{"../x", IsInvalidArgument},
		{"a/../x", IsInvalidArgument},
		{"./a", IsInvalidArgument},
		{"a/.", IsInvalidArgument},
		{".", IsInvalidArgument},
		{"a\x00b", IsInvalidArgument},
		// Control characters: every byte below 0x20, and DEL.
		{"app\n:v1", IsInvalidArgument},
		{"a\tb", IsInvalidArgument},
		{"\x1b[31mred", IsInvalidArgument},
		{"app\x7f", IsInvalidArgument},
		{"a\rb", IsInvalidArgument},
		// C1 controls, as UTF-8 and as lone bytes (a terminal's CSI).
		{"a\u0085b", IsInvalidArgument},
		{"a\u009b31mb", IsInvalidArgument},
		{"a\x9b31mb", IsInvalidArgument},
		// Other bytes that are not UTF-8 stay valid (listings quote them).
		{"a\xffb", nil},
		{"\u00a0nbsp", nil},
		{strings.Repeat("a", 5000) + "\n", IsInvalidArgument}, // the control byte, not the length
		// Unusual printable characters stay valid: listings quote them.
		{"app: v1 ", nil},
		{`it's "quoted" \ back`, nil},
		{"café/ü:1", nil},
		{"a~b#c$d", nil},
	} {
		err := ValidateRef(tc.ref)
		switch {
		case tc.is == nil && err != nil:
			t.Errorf("ValidateRef(%q) = %v, want valid", shorten(tc.ref), err)
		case tc.is != nil && (err == nil || !tc.is(err)):
			t.Errorf("ValidateRef(%q) = %v, want the other kind", shorten(tc.ref), err)
		}
	}
	for b := 0; b < 0x80; b++ {
		ref := "app" + string(rune(b)) + "x"
		if err := ValidateRef(ref); (b < 0x20 || b == 0x7f) != IsInvalidArgument(err) {
			t.Errorf("ValidateRef(%q) = %v", ref, err)
		}
	}
	if err := ValidateRef("app\n:v1"); !strings.Contains(err.Error(), `image ref "app\n:v1": contains control character 0x0a at byte 3`) {
		t.Errorf("message %q does not name the ref, the byte and where it is", err)
	}
	db := openTestDB(t, Options{})
	img := seedImage(t, db, "default", "x")
	before := dump(t, db)
	for _, ref := range []string{"app\n:v1", "dir/\x1b[2J"} {
		if _, err := db.Images().Put(ImageWrite{Namespace: "default", Ref: ref, Manifest: img.manifest}); !IsInvalidArgument(err) {
			t.Fatalf("ImageStore.Put of %q: %v, want ErrInvalidArgument", ref, err)
		}
	}
	if after := dump(t, db); after != before {
		t.Fatalf("a refused ref changed the store:\n%s\n%s", before, after)
	}
	if _, err := db.Images().Put(ImageWrite{Namespace: "default", Ref: deep, Manifest: img.manifest}); !IsNameTooLong(err) {
		t.Fatalf("ImageStore.Put of a 10,000-deep ref: %v", err)
	}
	if len(ValidateRef(deep).Error()) > 300 {
		t.Fatal("the message quotes a 20,000-byte ref in full")
	}
}

func TestReplaceRenameLink(t *testing.T) {
	db := openTestDB(t, Options{})
	a := seedImage(t, db, "default", "a")
	b := seedImage(t, db, "default", "b")
	first, err := db.Images().Put(ImageWrite{Namespace: "default", Ref: "x", Manifest: a.manifest})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Labels().Set(Object{Namespace: "default", Image: "x"}, "k", "v", nil); err != nil {
		t.Fatal(err)
	}
	// Replace keeps the ID and releases what only the old target claimed.
	second, err := db.Images().Put(ImageWrite{Namespace: "default", Ref: "x", Manifest: b.manifest})
	if err != nil {
		t.Fatal(err)
	}
	if second.ID != first.ID || !second.CreatedAt.Equal(first.CreatedAt) || second.Target.Digest != b.digest || second.Labels["k"] != "v" {
		t.Fatalf("replaced image %+v, first %+v", second, first)
	}
	if _, err := db.GetBlob("default", a.config.Digest); !IsNotFound(err) {
		t.Fatalf("the old target's config after replace: %v", err)
	}

	// Link: a new ID, same target and labels, counted claims.
	linked, err := db.Images().Link("default", "x", "default", "y")
	if err != nil {
		t.Fatal(err)
	}
	if linked.ID == first.ID || linked.Target.Digest != second.Target.Digest || linked.Labels["k"] != "v" {
		t.Fatalf("linked %+v", linked)
	}
	_, err = db.Images().Link("default", "x", "default", "y")
	wantKind(t, "link onto an existing image", err, IsExists, "ErrExists")
	_, err = db.Images().Link("default", "nope", "default", "z")
	wantKind(t, "link of a missing image", err, IsNotFound, "ErrNotFound")
	_, err = db.Images().Link("default", "x", "default", "x/z")
	wantKind(t, "link below an image", err, IsNotDirectory, "ErrNotDirectory")
	if err := db.Images().Delete("default", "x"); err != nil {
		t.Fatal(err)
	}
	if bl, err := db.GetBlob("default", b.layer.Digest); err != nil || !bl.InUse {
		t.Fatalf("after rm of one of two links: %+v %v", bl, err)
	}

	// Rename keeps the ID and labels.
	if err := db.Images().Rename("default", "y", "default", "dir/z", false); err != nil {
		t.Fatal(err)
	}
	if _, err := db.GetImage("default", "y"); !IsNotFound(err) {
		t.Fatalf("old name after rename: %v", err)
	}
	z, err := db.GetImage("default", "dir/z")
	if err != nil || z.ID != linked.ID || z.Labels["k"] != "v" || z.Target.Digest != linked.Target.Digest {
		t.Fatalf("renamed image %+v %v, want %+v", z, err, linked)
	}
	if err := db.Images().Rename("default", "dir/z", "default", "dir/z", false); err != nil {
		t.Fatalf("rename onto itself: %v", err)
	}
	wantKind(t, "rename a missing image", db.Images().Rename("default", "nope", "default", "w", false), IsNotFound, "ErrNotFound")
	wantKind(t, "rename onto a directory", db.Images().Rename("default", "dir/z", "default", "dir", false), IsIsDirectory, "ErrIsDirectory")
	wantKind(t, "rename below an image", db.Images().Rename("default", "dir/z", "default", "dir/z/w", false), IsNotDirectory, "ErrNotDirectory")
	wantKind(t, "rename to a bad ref", db.Images().Rename("default", "dir/z", "default", "../w", false), IsInvalidArgument, "ErrInvalidArgument")

	// Rename over another image replaces it and releases its blobs.
	a = seedImage(t, db, "default", "a") // dropped by the replace above
	if _, err := db.Images().Put(ImageWrite{Namespace: "default", Ref: "c", Manifest: a.manifest}); err != nil {
		t.Fatal(err)
	}
	released := releasedBy(t, db, "default", func() error { return db.Images().Rename("default", "dir/z", "default", "c", false) })
	got, err := db.GetImage("default", "c")
	if err != nil || got.ID != linked.ID || got.Target.Digest != b.digest {
		t.Fatalf("c after rename over it: %+v %v", got, err)
	}
	if want := sortedDigests(a.digest, a.config.Digest, a.layer.Digest); !equalDigests(sortedDigests(released...), want) {
		t.Fatalf("released %v, want %v", released, want)
	}
	if e, err := db.Images().Lookup("default", "dir"); err != nil || !e.IsDir {
		t.Fatalf("the directory of the renamed ref must stay until rmdir: %+v %v", e, err)
	}
	images, _ := db.ListImages("default")
	if len(images) != 1 || images[0].Name != "c" {
		t.Fatalf("images %+v", images)
	}
	checkInvariants(t, db)
}

// An image claims what lies below its index as deep as imagegraph walks:
// the blobs of a manifest below imagegraph.MaxIndexDepth indexes, and of
// one below an index more only the manifest, which its index names.
func TestIndexClaimsAsDeepAsTheGraphIsWalked(t *testing.T) {
	db := openTestDB(t, Options{})
	for _, indexes := range []int{imagegraph.MaxIndexDepth, imagegraph.MaxIndexDepth + 1} {
		name := fmt.Sprint("depth-", indexes)
		img := seedImage(t, db, "default", name)
		below := mustWriteBlob(t, db, "default", img.manifest)
		below.MediaType = ocispec.MediaTypeImageManifest
		var data []byte
		for i := 0; i < indexes; i++ {
			var err error
			if data, err = json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": ocispec.MediaTypeImageIndex, "manifests": []ocispec.Descriptor{below}}); err != nil {
				t.Fatal(err)
			}
			if i < indexes-1 { // the outermost is the image's manifest
				below = mustWriteBlob(t, db, "default", data)
				below.MediaType = ocispec.MediaTypeImageIndex
			}
		}
		if _, err := db.Images().Put(ImageWrite{Namespace: "default", Ref: name, Manifest: data}); err != nil {
			t.Fatal(err)
		}
		deepEnough := indexes <= imagegraph.MaxIndexDepth
		for _, tc := range []struct {
			what string
			d    digest.Digest
			want bool
		}{{"manifest", img.digest, true}, {"config", img.config.Digest, deepEnough}, {"layer", img.layer.Digest, deepEnough}} {
			if b, err := db.GetBlob("default", tc.d); err != nil || b.InUse != tc.want {
				t.Errorf("below %d indexes, the %s: %+v %v, want in use %v", indexes, tc.what, b, err, tc.want)
			}
		}
	}
	checkInvariants(t, db)
}
