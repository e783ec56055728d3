package integration

import (
	"fmt"
	"testing"
)

// nsfs images check says which images miss blobs and which; images ls
// marks them; once the blobs arrive the images are complete. Below an
// index only the host's platform counts, unless --all-platforms.
func TestCLIImagesCheck(t *testing.T) {
	t.Parallel()
	d := startNsfs(t)
	img := newImage(1401, "amd64", 3000, 5000)
	arm := newImage(1402, "arm64", 4000)
	d.putBlob(t, "default", img.config)
	d.putBlob(t, "default", img.layers[0])
	d.putManifest(t, "default", "app:v1", img.manifest.data)
	idx := newIndex(img, arm)
	d.putManifest(t, "default", "multi:latest", idx.data)

	header := []string{"REF", "TYPE", "DIGEST", "STATUS", "SIZE", "MISSING"}
	total := len(img.manifest.data) + len(img.config.data) + 3000 + 5000
	present := total - 5000
	appRow := func(status string, have, missing string) []string {
		return []string{"app:v1", mediaTypeOCIManifest, img.manifest.digest(), status, have + "/" + cliKiB(t, total), missing}
	}
	idxTotal := len(idx.data) + total
	multiRow := func(status string, have, missing string) []string {
		return []string{"multi:latest", mediaTypeOCIIndex, idx.digest(), status, have + "/" + cliKiB(t, idxTotal), missing}
	}
	layer := "sha256:" + img.layers[1].hex()
	// An incomplete image makes the check exit 1 (s14, finding 4: `nsfs
	// images check && deploy`), after the table.
	before := d.state(t)
	r := d.cliFails(t, "nsfs: 2 of 2 images checked are incomplete\n", "images", "check")
	assertOutput(t, "images check", r.stdout, cliTable(true, header,
		appRow("incomplete (3/4)", cliKiB(t, present), layer),
		multiRow("incomplete (4/5)", cliKiB(t, len(idx.data)+present), layer)))
	r = d.cliFails(t, "nsfs: 2 of 2 images checked are incomplete\n", "images", "check", "-q")
	assertOutput(t, "images check -q", r.stdout, lines("app:v1", "multi:latest"))
	r = d.cliFails(t, "nsfs: 1 of 1 images checked is incomplete\n", "images", "check", "app:v1")
	assertOutput(t, "images check of one ref", r.stdout, cliTable(true, header,
		appRow("incomplete (3/4)", cliKiB(t, present), layer)))
	d.assertUnchanged(t, "images check", before)
	ls := d.cli(t, "images", "ls")
	want := cliTable(true, []string{"REF", "TYPE", "DIGEST", "SIZE", "PLATFORMS", "LABELS"},
		[]string{"app:v1", mediaTypeOCIManifest, img.manifest.digest(), cliKiB(t, present) + " (incomplete)", "linux/amd64", "-"},
		[]string{"multi:latest", mediaTypeOCIIndex, idx.digest(), cliKiB(t, len(idx.data)+present) + " (incomplete)", "linux/amd64,linux/arm64", "-"})
	assertOutput(t, "images ls with incomplete images", ls, want)

	// The layer arrives: both images claim it and are complete.
	d.putBlob(t, "default", img.layers[1])
	assertOutput(t, "images check once the layer is there", d.cli(t, "images", "check"), cliTable(true, header,
		appRow("complete (4/4)", cliKiB(t, total), "-"),
		multiRow("complete (5/5)", cliKiB(t, idxTotal), "-")))
	assertOutput(t, "images check -q of complete images", d.cli(t, "images", "check", "-q"), "")

	// Every platform of the index: arm64's manifest is missing.
	all := d.cliFails(t, "nsfs: 1 of 1 images checked is incomplete\n", "images", "check", "--all-platforms", "multi:latest").stdout
	armTotal := idxTotal + len(arm.manifest.data)
	wantAll := cliTable(true, header, []string{"multi:latest", mediaTypeOCIIndex, idx.digest(), "incomplete (5/6)",
		cliKiB(t, idxTotal) + "/" + cliKiB(t, armTotal), "sha256:" + arm.manifest.hex()})
	assertOutput(t, "images check --all-platforms", all, wantAll)
	d.cliFails(t, fmt.Sprintf("nsfs: image %q: not found\n", "nope"), "images", "check", "nope")
}
