package metadata

import (
	"strings"
	"testing"
)

// ImageStore.Put refuses such a manifest with ErrInvalidArgument naming the
// key, and changes nothing.
func TestPutImageRefusesDuplicateKeys(t *testing.T) {
	db := openTestDB(t, Options{})
	img := seedImage(t, db, "default", "dup")
	good := string(img.manifest)
	// A second config, naming the same blob: a parser that keeps the
	// first and one that keeps the last would still disagree on bytes.
	bad := strings.Replace(good, `"config":`, `"config":{"mediaType":"x","digest":"`+string(img.layer.Digest)+`","size":1},"config":`, 1)
	before := dump(t, db)
	_, err := db.Images().Put(ImageWrite{Namespace: "default", Ref: "app", Manifest: []byte(bad)})
	wantKind(t, "ImageStore.Put with two configs", err, IsInvalidArgument, "ErrInvalidArgument")
	if !strings.Contains(err.Error(), `image "app": duplicate key "config" at the top level`) {
		t.Errorf("message %q does not name the image and the key", err)
	}
	if after := dump(t, db); after != before {
		t.Fatalf("a refused manifest changed the store:\n%s\n%s", before, after)
	}
	if _, err := db.Images().Put(ImageWrite{Namespace: "default", Ref: "app", Manifest: img.manifest}); err != nil {
		t.Fatalf("the manifest without the duplicate: %v", err)
	}
}
