package integration

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestBlobIngestWithCp(t *testing.T) {
	t.Parallel()
	d := startNsfs(t)
	m := d.mnt
	b := blob{data: randomBytes(71, 300<<10)}
	p := blobPath("default", b.hex())
	d.putBlob(t, "default", b)

	assertOutput(t, "ls ns/default/blobs/sha256", mustRun(t, m, "ls", "ns/default/blobs/sha256"), lines(b.hex()))
	assertOutput(t, "sha256sum of the blob", mustRun(t, m, "sha256sum", p), b.hex()+"  "+p+"\n")
	assertOutput(t, "stat -c '%s %F'", mustRun(t, m, "stat", "-c", "%s %F", p), fmt.Sprintf("%d regular file\n", len(b.data)))
	if out := mustRun(t, m, "cat", p); out != string(b.data) {
		t.Errorf("cat of the blob differs from what was written (%d bytes, want %d)", len(out), len(b.data))
	}
	onDisk, err := os.ReadFile(filepath.Join(d.root, "blobs", "sha256", b.hex()))
	if err != nil || !bytes.Equal(onDisk, b.data) {
		t.Errorf("ROOT/blobs/sha256/%s: %v (equal=%v)", b.hex(), err, bytes.Equal(onDisk, b.data))
	}
	if ingests := ingestFiles(t, d.root); len(ingests) != 0 {
		t.Errorf("ROOT/ingest holds %v after the ingest", ingests)
	}
	// An empty blob is a blob too.
	empty := blob{data: nil}
	d.putBlob(t, "default", empty)
	assertOutput(t, "stat -c %s of the empty blob", mustRun(t, m, "stat", "-c", "%s", blobPath("default", empty.hex())), "0\n")
}

func TestBlobWithTheWrongNameIsBadMessage(t *testing.T) {
	t.Parallel()
	d := startNsfs(t)
	m := d.mnt
	b := blob{data: randomBytes(72, 100<<10)}
	other := blob{data: randomBytes(73, 10)}
	d.putBlob(t, "default", other)

	before := d.state(t)
	mustFail(t, m, "Bad message", "cp", writeTemp(t, "b", b.data), blobPath("default", strings.Repeat("0", 64)))
	mustFail(t, m, "Bad message", "cp", writeTemp(t, "b", b.data[:len(b.data)-1]), blobPath("default", b.hex()))
	mustFail(t, m, "Bad message", "cp", writeTemp(t, "b", append(bytes.Clone(b.data), 0)), blobPath("default", b.hex()))
	d.assertUnchanged(t, "ingests with wrong bytes", before)
	mustFail(t, m, "No such file or directory", "stat", blobPath("default", b.hex()))
	if ingests := ingestFiles(t, d.root); len(ingests) != 0 {
		t.Errorf("ROOT/ingest holds %v after refused ingests", ingests)
	}

	// From a program: fsync says EBADMSG, and nothing is kept.
	f, err := os.OpenFile(d.path(blobPath("default", b.hex())), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o444)
	if err != nil {
		t.Fatalf("create blob file: %v", err)
	}
	if _, err := f.Write(b.data[:1000]); err != nil {
		t.Errorf("write: %v", err)
	}
	assertErrno(t, "fsync of a blob whose bytes do not match its name", f.Sync(), syscall.EBADMSG)
	if err := f.Close(); err == nil {
		t.Logf("close after the failed fsync returned success")
	}
	d.assertUnchanged(t, "open/write/fsync/close of wrong bytes", before)

	// Names that are not sha256 digests are temporary files, never
	// blobs: they are there until removed (temp_ingest_test.go).
	for _, name := range []string{"xyz", strings.ToUpper(b.hex()), b.hex()[:63], b.hex() + "0", "sha256:" + b.hex()} {
		mustRun(t, m, "cp", writeTemp(t, "b", b.data), blobPath("default", name))
		mustFail(t, m, "No such file or directory", "stat", blobPath("default", b.hex()))
		mustRun(t, m, "rm", blobPath("default", name))
	}
	d.assertUnchanged(t, "temporary files under names that are no digest, removed", before)
	// The same bytes under the right name are fine.
	d.putBlob(t, "default", b)
}

func TestBlobIngestIsInvisibleUntilCommitted(t *testing.T) {
	t.Parallel()
	d := startNsfs(t)
	m := d.mnt
	b := blob{data: randomBytes(74, 1<<20)}
	f, err := os.OpenFile(d.path(blobPath("default", b.hex())), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o444)
	if err != nil {
		t.Fatalf("create blob file: %v", err)
	}
	defer f.Close()
	if _, err := f.Write(b.data[:len(b.data)/2]); err != nil {
		t.Fatalf("write: %v", err)
	}
	if _, ok := rootBlobFiles(t, d.root)[b.hex()]; ok {
		t.Errorf("half-written blob is already in ROOT/blobs/sha256")
	}
	if ingests := ingestFiles(t, d.root); len(ingests) != 1 {
		t.Errorf("ROOT/ingest = %v during the ingest, want one file", ingests)
	}
	assertOutput(t, "ls blobs/sha256 during the ingest", mustRun(t, m, "ls", "ns/default/blobs/sha256"), "")
	if _, err := f.Write(b.data[len(b.data)/2:]); err != nil {
		t.Fatalf("write: %v", err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if got := rootBlobFiles(t, d.root)[b.hex()]; got.size != int64(len(b.data)) {
		t.Errorf("ROOT/blobs/sha256/%s has size %d after close, want %d", b.hex(), got.size, len(b.data))
	}
	if ingests := ingestFiles(t, d.root); len(ingests) != 0 {
		t.Errorf("ROOT/ingest = %v after close", ingests)
	}
	assertOutput(t, "ls blobs/sha256 after close", mustRun(t, m, "ls", "ns/default/blobs/sha256"), lines(b.hex()))
	assertOutput(t, "sha256sum after close", mustRun(t, m, "sha256sum", blobPath("default", b.hex())),
		b.hex()+"  "+blobPath("default", b.hex())+"\n")
}

func TestBlobExistsWhenTheNamespaceCanSeeIt(t *testing.T) {
	t.Parallel()
	d := startNsfs(t)
	b := blob{data: randomBytes(75, 5000)}
	d.putBlob(t, "default", b)
	mustRun(t, d.mnt, "mkdir", "ns/foo")
	before := d.state(t)
	for _, ns := range []string{"default", "foo"} {
		_, err := os.OpenFile(d.path(blobPath(ns, b.hex())), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o444)
		assertErrno(t, "O_CREAT|O_EXCL of a blob "+ns+" can see", err, syscall.EEXIST)
	}
	d.assertUnchanged(t, "O_EXCL ingests of a visible blob", before)
}

func TestCommittedBlobsAreReadOnly(t *testing.T) {
	t.Parallel()
	d := startNsfs(t)
	m := d.mnt
	b := blob{data: randomBytes(76, 4096)}
	d.putBlob(t, "default", b)
	p := blobPath("default", b.hex())

	before := d.state(t)
	f, err := os.OpenFile(d.path(p), os.O_WRONLY, 0)
	if err == nil {
		_, err = f.Write([]byte("overwrite"))
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	assertErrno(t, "writing to a committed blob", err, syscall.EPERM)
	f, err = os.OpenFile(d.path(p), os.O_WRONLY|os.O_APPEND, 0)
	if err == nil {
		_, err = f.Write([]byte("append"))
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	assertErrno(t, "appending to a committed blob", err, syscall.EPERM)
	mustFail(t, m, "Operation not permitted", "truncate", "-s", "0", p)
	mustFail(t, m, "Operation not permitted", "cp", writeTemp(t, "x", []byte("x")), p)
	if r := sh(t, m, "echo x >> "+p); r.code == 0 {
		t.Errorf("echo x >> blob succeeded: %s", r)
	}
	d.assertUnchanged(t, "writes to a committed blob", before)
	assertOutput(t, "sha256sum after the refused writes", mustRun(t, m, "sha256sum", p), b.hex()+"  "+p+"\n")
}

func TestRmBlob(t *testing.T) {
	t.Parallel()
	d := startNsfs(t)
	m := d.mnt
	img := newImage(77, "amd64", 2000)
	d.putImage(t, "default", "app:v1", img)
	loose := blob{data: randomBytes(78, 3000)}
	d.putBlob(t, "default", loose)

	before := d.state(t)
	for _, b := range img.blobs() {
		mustFail(t, m, "Device or resource busy", "rm", blobPath("default", b.hex()))
	}
	d.assertUnchanged(t, "rm of blobs an image references", before)

	mustRun(t, m, "rm", blobPath("default", loose.hex()))
	mustFail(t, m, "No such file or directory", "stat", blobPath("default", loose.hex()))
	assertOutput(t, "ls blobs/sha256", mustRun(t, m, "ls", "ns/default/blobs/sha256"), lines(img.hexes()...))
	if _, ok := rootBlobFiles(t, d.root)[loose.hex()]; ok {
		t.Errorf("ROOT/blobs/sha256/%s is still on disk after the only holder dropped it", loose.hex())
	}
	before = d.state(t)
	mustFail(t, m, "No such file or directory", "rm", blobPath("default", loose.hex()))
	d.assertUnchanged(t, "rm of a removed blob", before)
	// foo can see default's blob (shared) but does not hold it.
	mustRun(t, m, "mkdir", "ns/foo")
	before = d.state(t)
	mustFail(t, m, "No such file or directory", "rm", blobPath("foo", img.layers[0].hex()))
	d.assertUnchanged(t, "rm of a blob foo does not hold", before)
}

// TestLargeBlobIngestIsStreamed writes a 1 GiB blob through the mount and
// checks that the daemon's peak RSS stays under 100 MiB.
func TestLargeBlobIngestIsStreamed(t *testing.T) {
	t.Parallel()
	d := startNsfs(t, withWatchdog(5*time.Minute))
	const size = 1 << 30
	seed := [32]byte{'n', 's', 'f', 's'}
	chunk := make([]byte, 1<<20)
	stream := func(fn func([]byte) error) error {
		r := rand.NewChaCha8(seed)
		for written := 0; written < size; written += len(chunk) {
			_, _ = r.Read(chunk)
			if err := fn(chunk); err != nil {
				return err
			}
		}
		return nil
	}
	h := sha256.New()
	_ = stream(func(p []byte) error { _, err := h.Write(p); return err })
	hexDigest := hex.EncodeToString(h.Sum(nil))

	start := time.Now()
	f, err := os.OpenFile(d.path(blobPath("default", hexDigest)), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o444)
	if err != nil {
		t.Fatalf("create the blob file: %v", err)
	}
	if err := stream(func(p []byte) error { _, err := f.Write(p); return err }); err != nil {
		f.Close()
		t.Fatalf("write: %v", err)
	}
	if err := f.Sync(); err != nil {
		t.Errorf("fsync: %v", err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	t.Logf("1 GiB ingest took %v", time.Since(start))
	if hwm := d.vmHWM(t); hwm >= 100<<20 {
		t.Errorf("daemon peak RSS (VmHWM) = %d MiB during a 1 GiB ingest, want < 100 MiB", hwm>>20)
	} else {
		t.Logf("daemon VmHWM = %d MiB", hwm>>20)
	}
	assertOutput(t, "stat -c %s of the 1 GiB blob", mustRun(t, d.mnt, "stat", "-c", "%s", blobPath("default", hexDigest)), fmt.Sprintf("%d\n", size))
	if got := rootBlobFiles(t, d.root)[hexDigest]; got.size != size {
		t.Errorf("ROOT/blobs/sha256/%s has %d bytes, want %d", hexDigest, got.size, size)
	}
	if ingests := ingestFiles(t, d.root); len(ingests) != 0 {
		t.Errorf("ROOT/ingest holds %v", ingests)
	}
	mustRun(t, d.mnt, "rm", blobPath("default", hexDigest))
	if _, err := os.Stat(filepath.Join(d.root, "blobs", "sha256", hexDigest)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the 1 GiB blob file is still on disk after rm: %v", err)
	}
}
