package integration

import (
	"fmt"
	"testing"
)

// TestCLIImagesCountsNestedIndexes: images ls counts the blobs below an
// index as deep as the filesystem claims them (an image below six nested
// indexes: deeper than the listing once read), and reads the platform
// from the innermost index's entry.
func TestCLIImagesCountsNestedIndexes(t *testing.T) {
	t.Parallel()
	d := startNsfs(t)
	img := newImage(61, "amd64", 3000, 5000)
	for _, b := range img.blobs() {
		d.putBlob(t, "default", b)
	}
	inner := newIndex(img)
	size := len(inner.data)
	for _, b := range img.blobs() {
		size += len(b.data)
	}
	for i := 0; i < 5; i++ {
		d.putBlob(t, "default", inner)
		inner = blob{mediaType: mediaTypeOCIIndex, data: mustJSON(index{SchemaVersion: 2, MediaType: mediaTypeOCIIndex, Manifests: []descriptor{inner.descriptor()}})}
		size += len(inner.data)
	}
	d.putManifest(t, "default", "deep", inner.data)
	header := []string{"REF", "TYPE", "DIGEST", "SIZE", "PLATFORMS", "LABELS"}
	row := []string{"deep", mediaTypeOCIIndex, inner.digest(), cliKiB(t, size), "linux/amd64", "-"}
	assertOutput(t, fmt.Sprintf("images ls of an image below 6 indexes (%d bytes)", size), d.cli(t, "images", "ls"), cliTable(true, header, row))
}
