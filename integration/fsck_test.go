package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// nsfs fsck of a store a user broke: the report, the repair, and a store
// that mounts and works afterwards.
func TestFsckCommand(t *testing.T) {
	d := startNsfs(t)
	img := newImage(51, "amd64", 300, 200)
	d.putImage(t, "default", "app:v1", img)
	mustRun(t, d.mnt, "mkdir", "ns/foo")
	mustRun(t, d.mnt, "cp", d.path(imagePath("default", "app:v1")), d.path(imagePath("foo", "app:v1")))
	mustFail(t, "/", "store "+d.root+" is already in use by another nsfs", nsfsBin, "fsck", "--root", d.root)
	d.stop(t)

	assertOutput(t, "fsck of a sound store", mustRun(t, "/", nsfsBin, "fsck", "--root", d.root, "--verify-blobs"),
		lines("store "+d.root+" is clean: 2 namespaces, 2 images, 4 blobs, 4 blob files"))

	// The first layer's file is lost; a byte of the second flips.
	lost, flipped := img.layers[0], img.layers[1]
	if err := os.Remove(filepath.Join(d.root, "blobs", "sha256", lost.hex())); err != nil {
		t.Fatal(err)
	}
	data := append([]byte(nil), flipped.data...)
	data[7] ^= 0x20
	p := filepath.Join(d.root, "blobs", "sha256", flipped.hex())
	os.Chmod(p, 0o644)
	if err := os.WriteFile(p, data, 0o444); err != nil {
		t.Fatal(err)
	}
	missing := fmt.Sprintf("blob %s it claims is missing (its file blobs/sha256/%s is gone)", lost.digest(), lost.hex())
	r := run(t, "/", nsfsBin, "fsck", "--root", d.root)
	if r.code != 1 {
		t.Errorf("fsck of a broken store: %s, want exit 1", r)
	}
	assertOutput(t, "fsck", r.stdout, lines(
		`namespace "default": image "app:v1": `+missing,
		`namespace "foo": image "app:v1": `+missing,
		fmt.Sprintf("blob %s: its file blobs/sha256/%s is missing", lost.digest(), lost.hex())))
	assertOutput(t, "fsck's summary", r.stderr, "nsfs: store "+d.root+" has 3 problems (run nsfs fsck --repair to repair it; no blob whose bytes verify is deleted)\n")

	r = run(t, "/", nsfsBin, "fsck", "--root", d.root, "--verify-blobs")
	corrupt := fmt.Sprintf("blob file blobs/sha256/%s: its bytes hash to sha256:%s (corrupt)", flipped.hex(), sha256Hex(data))
	if r.code != 1 || r.stdout[:len(corrupt)] != corrupt {
		t.Errorf("fsck --verify-blobs: %s, want it to start with %q", r, corrupt)
	}

	r = run(t, "/", nsfsBin, "fsck", "--root", d.root, "--verify-blobs", "--repair")
	if r.code != 0 || r.stderr != "" {
		t.Errorf("fsck --repair: %s, want exit 0", r)
	}
	for _, want := range []string{
		`removed image "app:v1" of namespace "default": blob `,
		`removed image "app:v1" of namespace "foo": blob `,
		// Never deleted: set aside, or kept where a person can find them.
		"moved corrupt blob file blobs/sha256/" + flipped.hex() + " to quarantine/" + flipped.hex(),
		"adopted blob file blobs/sha256/" + img.config.hex(),
		"store " + d.root + " is clean now: 3 namespaces, 0 images, 2 blobs, 2 blob files",
	} {
		if !containsLine(r.stdout, want) {
			t.Errorf("fsck --repair output lacks a line starting %q:\n%s", want, r.stdout)
		}
	}
	mustFsckClean(t, d.root)

	// The repaired store mounts and works: the image can be written again.
	d = startNsfs(t, withStore(d.root, d.mnt))
	assertOutput(t, "ls images", mustRun(t, d.mnt, "ls", "ns/default/images", "ns/foo/images"), "ns/default/images:\n\nns/foo/images:\n")
	d.putImage(t, "default", "app:v1", img)
	d.stop(t)
	mustFsckClean(t, d.root)
}

func containsLine(out, prefix string) bool {
	for _, l := range splitLines(out) {
		if len(l) >= len(prefix) && l[:len(prefix)] == prefix {
			return true
		}
	}
	return false
}

func splitLines(s string) []string {
	var out []string
	for len(s) > 0 {
		i := 0
		for i < len(s) && s[i] != '\n' {
			i++
		}
		out = append(out, s[:i])
		if i < len(s) {
			i++
		}
		s = s[i:]
	}
	return out
}
