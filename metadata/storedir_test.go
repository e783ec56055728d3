package metadata

import (
	"bytes"
	"errors"
	"io"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/nsfs/nsfs/blobs"
	"github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"
)

// A blob whose file in the store was swapped for a link, or cut short, is
// not served: the error says which blob and why, and is of no kind (fs/
// answers EIO), not ErrNotFound.
func TestOpenBlobRefusesAFileThatIsNotTheBlob(t *testing.T) {
	db := openTestDB(t, Options{})
	data := []byte("layer bytes")
	desc := mustWriteBlob(t, db, defaultNamespace, data)
	secret := t.TempDir() + "/secret"
	if err := os.WriteFile(secret, []byte("not yours"), 0o600); err != nil {
		t.Fatal(err)
	}
	path := blobPath(db, desc.Digest)
	for _, tc := range []struct {
		name  string
		plant func() error
		kind  error
	}{
		{"symlink", func() error { return os.Symlink(secret, path) }, blobs.ErrUnsafe},
		{"short file", func() error { return os.WriteFile(path, data[:3], 0o444) }, blobs.ErrDamaged},
	} {
		if err := os.Remove(path); err != nil {
			t.Fatal(err)
		}
		if err := tc.plant(); err != nil {
			t.Fatal(err)
		}
		f, err := db.Content().Open(defaultNamespace, desc.Digest)
		if err == nil {
			f.Close()
			t.Fatalf("ContentStore.Open of a planted %s succeeded", tc.name)
		}
		if !errors.Is(err, tc.kind) || IsNotFound(err) || !strings.Contains(err.Error(), desc.Digest.String()) ||
			!strings.Contains(err.Error(), `namespace "default"`) {
			t.Fatalf("ContentStore.Open of a planted %s = %v, want %v naming the blob and namespace", tc.name, err, tc.kind)
		}
		// ContentStore.Writer still says it exists; ContentStore.Rewriter repairs it.
		if _, err := db.Content().Writer(defaultNamespace, 0, desc.Digest); !IsExists(err) {
			t.Fatalf("ContentStore.Writer over a planted %s = %v, want ErrExists", tc.name, err)
		}
		rewriteBlob(t, db, desc.Digest, data)
		if got, _ := os.ReadFile(secret); string(got) != "not yours" {
			t.Fatalf("the link's target changed: %q", got)
		}
	}
}

// rewriteBlob writes data again through ContentStore.Rewriter and checks
// it reads.
func rewriteBlob(t *testing.T, db *DB, d digest.Digest, data []byte) {
	t.Helper()
	w, err := db.Content().Rewriter(defaultNamespace, 0, d)
	if err != nil {
		t.Fatalf("ContentStore.Rewriter: %v", err)
	}
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(); err != nil {
		t.Fatalf("Commit of the rewrite: %v", err)
	}
	f, err := db.Content().Open(defaultNamespace, d)
	if err != nil {
		t.Fatalf("ContentStore.Open after the rewrite: %v", err)
	}
	defer f.Close()
	if got, err := io.ReadAll(f); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read after the rewrite: %q, %v", got, err)
	}
}

func TestRewriteBlob(t *testing.T) {
	db := openTestDB(t, Options{})
	data := []byte("deleted behind our back")
	desc := mustWriteBlob(t, db, defaultNamespace, data)
	before := dump(t, db)
	// A sound blob written again: its own bytes change nothing, others
	// are a mismatch.
	rewriteBlob(t, db, desc.Digest, data)
	if got := dump(t, db); got != before {
		t.Fatalf("rewriting a sound blob with its own bytes changed the store:\n%s\nwant\n%s", got, before)
	}
	w, err := db.Content().Rewriter(defaultNamespace, 0, desc.Digest)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("other bytes")); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(); !errors.Is(err, ErrDigestMismatch) {
		t.Fatalf("rewriting a sound blob with other bytes: %v, want ErrDigestMismatch", err)
	}
	if got := dump(t, db); got != before {
		t.Fatalf("a refused rewrite changed the store:\n%s\nwant\n%s", got, before)
	}
	if err := os.Remove(blobPath(db, desc.Digest)); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Content().Open(defaultNamespace, desc.Digest); !IsNotFound(err) {
		t.Fatalf("ContentStore.Open of a deleted file = %v, want ErrNotFound", err)
	}
	rewriteBlob(t, db, desc.Digest, data)
	if after := dump(t, db); after != before {
		t.Fatalf("the rewrite changed the records:\n%s\n---\n%s", before, after)
	}
	// Wrong bytes repair nothing.
	if err := os.Remove(blobPath(db, desc.Digest)); err != nil {
		t.Fatal(err)
	}
	w, err = db.Content().Rewriter(defaultNamespace, 0, desc.Digest)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("other bytes")); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(); !IsDigestMismatch(err) {
		t.Fatalf("Commit of wrong bytes = %v, want ErrDigestMismatch", err)
	}
	if fileExists(db, desc.Digest) {
		t.Fatal("wrong bytes were published")
	}
	rewriteBlob(t, db, desc.Digest, data)
	checkInvariants(t, db)
}

// A full disk is ENOSPC from BlobWriter's Write and Commit alike (fs/
// passes it on), never a digest mismatch.
func TestBlobWriterFullDiskKeepsENOSPC(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root")
	}
	root := t.TempDir()
	if err := unix.Mount("tmpfs", root, "tmpfs", 0, "size=1m"); err != nil {
		t.Skipf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(root, 0); err != nil {
			t.Errorf("unmount %s: %v", root, err)
		}
	})
	db, err := Open(root, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	data := bytes.Repeat([]byte("no room "), 256<<10) // 2 MiB
	d := digest.FromBytes(data)
	w, err := db.Content().Writer(defaultNamespace, 0, d)
	if err != nil {
		t.Fatal(err)
	}
	var writeErr error
	for off := 0; off < len(data) && writeErr == nil; off += 64 << 10 {
		_, writeErr = w.WriteAt(data[off:off+64<<10], int64(off))
	}
	var errno syscall.Errno
	if !errors.As(writeErr, &errno) || errno != syscall.ENOSPC {
		t.Fatalf("Write on a full disk = %v, want ENOSPC", writeErr)
	}
	err = w.Commit()
	if !errors.As(err, &errno) || errno != syscall.ENOSPC || IsDigestMismatch(err) {
		t.Fatalf("Commit after ENOSPC = %v, want ENOSPC", err)
	}
	if _, err := db.Content().Stat(defaultNamespace, d); !IsNotFound(err) {
		t.Fatalf("blob recorded after ENOSPC: %v", err)
	}
}
