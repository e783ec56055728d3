package integration

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// Things planted in ROOT/blobs/sha256 while the mount is up, under the
// name of a blob the namespace holds: none is ever read through the
// mount, and writing the blob's bytes again (cp, which opens O_TRUNC)
// puts a regular file with those bytes in its place, touching nothing
// outside the store.
func TestPlantedBlobFileIsNotServedAndCpRepairsIt(t *testing.T) {
	t.Parallel()
	d := startNsfs(t)
	m := d.mnt
	b := blob{data: randomBytes(91, 8192)}
	d.putBlob(t, "default", b)
	p := blobPath("default", b.hex())
	storeFile := filepath.Join(d.root, "blobs", "sha256", b.hex())

	// The secret is as long as the blob: a size check alone would pass it.
	secret := append([]byte("SECRET "), bytes.Repeat([]byte{'s'}, len(b.data)-7)...)
	outside := t.TempDir()
	secretPath := filepath.Join(outside, "shadow")
	if err := os.WriteFile(secretPath, secret, 0o600); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name  string
		plant func() error
		log   string // what the daemon logs of it
	}{
		{"symlink", func() error { return os.Symlink(secretPath, storeFile) }, "is a symlink, not a regular file"},
		{"fifo", func() error { return unix.Mkfifo(storeFile, 0o644) }, "is a fifo, not a regular file"},
		{"short file", func() error { return os.WriteFile(storeFile, b.data[:100], 0o444) }, "has 100 bytes, not the blob's 8192"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := os.Remove(storeFile); err != nil {
				t.Fatal(err)
			}
			if err := tc.plant(); err != nil {
				t.Fatal(err)
			}
			// timeout: a fifo opened for reading would wait for a writer.
			r := run(t, m, "timeout", "-s", "KILL", "20", "cat", p)
			if r.code == 0 {
				t.Errorf("cat of a planted %s succeeded: %d bytes", tc.name, len(r.stdout))
			}
			if strings.Contains(r.stdout, "SECRET") || len(r.stdout) > 0 {
				t.Fatalf("cat through the mount printed %d bytes of a planted %s (%q...)", len(r.stdout), tc.name, r.stdout[:min(len(r.stdout), 16)])
			}
			if !strings.Contains(r.stderr, "Input/output error") {
				t.Errorf("cat of a planted %s: want EIO, got %s", tc.name, r)
			}
			t.Logf("cat of a planted %s: %s", tc.name, strings.TrimSpace(r.stderr))
			d.waitForLog(t, tc.log)

			// The honest bytes, as cp writes them over an existing file.
			mustRun(t, m, "cp", writeTemp(t, "honest", b.data), p)
			var st unix.Stat_t
			if err := unix.Lstat(storeFile, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG || st.Mode&0o777 != 0o444 {
				t.Fatalf("ROOT/blobs/sha256/%s after cp: mode %o, %v; want a 0444 regular file", b.hex(), st.Mode, err)
			}
			if got, err := os.ReadFile(storeFile); err != nil || !bytes.Equal(got, b.data) {
				t.Fatalf("ROOT/blobs/sha256/%s after cp holds other bytes (%d, %v)", b.hex(), len(got), err)
			}
			if got, err := os.ReadFile(secretPath); err != nil || !bytes.Equal(got, secret) {
				t.Fatalf("the file outside the store changed (%d bytes, %v)", len(got), err)
			}
			if names, _ := os.ReadDir(outside); len(names) != 1 {
				t.Fatalf("the directory outside the store holds %d entries, want 1", len(names))
			}
			if out := mustRun(t, m, "cat", p); out != string(b.data) {
				t.Fatalf("cat after the repair printed %d bytes that are not the blob", len(out))
			}
			assertOutput(t, "ls after the repair", mustRun(t, m, "ls", "ns/default/blobs/sha256"), lines(b.hex()))
			if ingests := ingestFiles(t, d.root); len(ingests) != 0 {
				t.Errorf("ROOT/ingest holds %v after the repair", ingests)
			}
		})
	}
}

// A blob file deleted behind the daemon's back: cp of the blob's bytes
// puts it back. Over a sound blob the same cp is still refused and
// changes nothing, and wrong bytes repair nothing.
func TestDeletedBlobFileIsRepairedByCp(t *testing.T) {
	t.Parallel()
	d := startNsfs(t)
	m := d.mnt
	img := newImage(92, "amd64", 3000)
	d.putImage(t, "default", "app:v1", img)
	layer := img.layers[0]
	p := blobPath("default", layer.hex())
	storeFile := filepath.Join(d.root, "blobs", "sha256", layer.hex())
	honest := writeTemp(t, "layer", layer.data)

	before := d.state(t)
	mustRun(t, m, "cp", honest, p)
	d.assertUnchanged(t, "cp of a sound blob's own bytes", before)

	if err := os.Remove(storeFile); err != nil {
		t.Fatal(err)
	}
	r := run(t, m, "cat", p)
	if r.code == 0 {
		t.Errorf("cat of a blob whose file is gone succeeded: %s", r)
	}
	t.Logf("cat of a blob whose file is gone: %s", strings.TrimSpace(r.stderr))

	mustFail(t, m, "Bad message", "cp", writeTemp(t, "other", append(layer.data[:len(layer.data)-1:len(layer.data)-1], 'x')), p)
	if _, err := os.Lstat(storeFile); !os.IsNotExist(err) {
		t.Fatalf("wrong bytes were put in the store: %v", err)
	}
	mustRun(t, m, "cp", honest, p)
	if out := mustRun(t, m, "cat", p); out != string(layer.data) {
		t.Fatalf("cat after the repair printed %d bytes that are not the blob", len(out))
	}
	assertOutput(t, "sha256sum after the repair", mustRun(t, m, "sha256sum", p), layer.hex()+"  "+p+"\n")
	// The image still has its layer, and its records are as they were.
	assertOutput(t, "ls blobs after the repair", mustRun(t, m, "ls", "ns/default/blobs/sha256"), lines(img.hexes()...))
	if ingests := ingestFiles(t, d.root); len(ingests) != 0 {
		t.Errorf("ROOT/ingest holds %v after the repair", ingests)
	}
}
