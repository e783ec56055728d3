package blobs

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"
)

func TestRelPaths(t *testing.T) {
	d := digest.FromString("x")
	if got, want := RelPath(d), "blobs/sha256/"+d.Encoded(); got != want {
		t.Fatalf("RelPath = %q, want %q", got, want)
	}
	// A damaged record's digest is named as it is, without a panic.
	if got := RelPath("sha256:not-hex"); got != "blobs/sha256/not-hex" {
		t.Fatalf("RelPath of an invalid digest = %q", got)
	}
	if got := IngestRelPath("abc-1"); got != "ingest/abc-1" {
		t.Fatalf("IngestRelPath = %q", got)
	}
}

// List sorts the blob and ingest directories into blob files, ingest
// files and strays, each stray with why; the paths it gives are the
// ones RelPath and IngestRelPath give, and CountBlobEntries sees them.
func TestListJudgesEntries(t *testing.T) {
	s, root := newStore(t)
	if n, err := CountBlobEntries(root, 10); err != nil || n != 0 {
		t.Fatalf("CountBlobEntries of an empty store = %d, %v", n, err)
	}
	blob := mustWriteBytes(t, s, []byte("a blob"))
	if err := unix.Mkfifo(filepath.Join(blobDir(root), "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(blobDir(root), "not-a-blob"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc/passwd", filepath.Join(ingestDir(root), "link")); err != nil {
		t.Fatal(err)
	}
	w := writerWith(t, s, digest.FromString("x"), []byte("x"))
	defer w.Abort()

	got, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Files) != 1 || got.Files[blob] != int64(len("a blob")) {
		t.Fatalf("Files = %v, want only %s", got.Files, blob)
	}
	if len(got.Ingests) != 1 || got.Ingests[0].Size != 1 {
		t.Fatalf("Ingests = %+v, want the one being written", got.Ingests)
	}
	var strays []string
	for _, st := range got.Strays {
		strays = append(strays, st.Path+" "+st.Why)
	}
	want := []string{
		"blobs/sha256/fifo is a fifo where a blob file should be (never followed)",
		"blobs/sha256/not-a-blob is not a blob (the name must be 64 lowercase hex digits)",
		IngestRelPath("link") + " is a symlink where an ingest file should be (never followed)",
	}
	if strings.Join(strays, "\n") != strings.Join(want, "\n") {
		t.Fatalf("Strays:\n%s\nwant\n%s", strings.Join(strays, "\n"), strings.Join(want, "\n"))
	}
	if n, err := CountBlobEntries(root, 10); err != nil || n != 3 {
		t.Fatalf("CountBlobEntries = %d, %v, want 3", n, err)
	}
	if _, err := os.Lstat(filepath.Join(root, RelPath(blob))); err != nil {
		t.Fatalf("RelPath does not name the blob's file: %v", err)
	}

	to, err := s.QuarantineBlob(blob)
	if err != nil || to != "quarantine/"+blob.Encoded() {
		t.Fatalf("QuarantineBlob = %q, %v", to, err)
	}
	if _, err := s.Stat(blob); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Stat after QuarantineBlob = %v, want not found", err)
	}
	if _, err := s.QuarantineBlob("sha256:bad"); err == nil {
		t.Fatal("QuarantineBlob of an invalid digest succeeded")
	}
}

func TestCountBlobEntriesRefusesALink(t *testing.T) {
	root := t.TempDir()
	if err := os.Mkdir(filepath.Join(root, "blobs"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(t.TempDir(), filepath.Join(root, "blobs", "sha256")); err != nil {
		t.Fatal(err)
	}
	if _, err := CountBlobEntries(root, 10); err == nil || err.Error() != "blobs/sha256 is a symlink, not a directory" {
		t.Fatalf("CountBlobEntries through a link = %v", err)
	}
}
