package blobs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/opencontainers/go-digest"
)

func newStore(t *testing.T) (*Store, string) {
	t.Helper()
	root := t.TempDir()
	s, err := Open(root)
	if err != nil {
		t.Fatalf("Open(%s): %v", root, err)
	}
	return s, root
}

// names lists a directory, sorted; a missing directory is a failure.
func names(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatalf("read %s: %v", dir, err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

func blobDir(root string) string   { return filepath.Join(root, "blobs", "sha256") }
func ingestDir(root string) string { return filepath.Join(root, "ingest") }

func inode(t *testing.T, path string) uint64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatalf("stat %s: %v", path, err)
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}

func mustWriteBytes(t *testing.T, s *Store, data []byte) digest.Digest {
	t.Helper()
	d := digest.FromBytes(data)
	existed, err := s.WriteBytes(d, data)
	if err != nil {
		t.Fatalf("WriteBytes(%s): %v", d, err)
	}
	if existed {
		t.Fatalf("WriteBytes(%s) of a new blob reported existed", d)
	}
	return d
}

// writerWith starts an ingest of d and writes data to it.
func writerWith(t *testing.T, s *Store, d digest.Digest, data []byte) *Writer {
	t.Helper()
	w, err := s.NewWriter(d)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	return w
}

func TestOpenCreatesDirectories(t *testing.T) {
	root := filepath.Join(t.TempDir(), "store")
	s, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{blobDir(root), ingestDir(root)} {
		fi, err := os.Stat(dir)
		if err != nil || !fi.IsDir() {
			t.Fatalf("Open did not create directory %s: %v", dir, err)
		}
	}
	if s.Root() != root {
		t.Fatalf("Root() = %q, want %q", s.Root(), root)
	}
	// Opening an existing store keeps its blobs.
	d := mustWriteBytes(t, s, []byte("kept"))
	s2, err := Open(root)
	if err != nil {
		t.Fatalf("second Open: %v", err)
	}
	if _, err := s2.Stat(d); err != nil {
		t.Fatalf("blob lost by reopening: %v", err)
	}
}

func TestOpenFailsOnAFile(t *testing.T) {
	root := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(root, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(root); err == nil || !strings.Contains(err.Error(), root) {
		t.Fatalf("Open on a regular file = %v, want an error naming %s", err, root)
	}
}

func TestPath(t *testing.T) {
	s, root := newStore(t)
	d := digest.FromString("hello")
	if got, want := s.blobPath(d), filepath.Join(blobDir(root), d.Encoded()); got != want {
		t.Fatalf("Path(%s) = %s, want %s", d, got, want)
	}
	for _, bad := range []digest.Digest{
		"", "sha256:", "sha256", ":", "sha256:../../../etc/passwd", "../../etc/passwd",
		"sha256:/etc/passwd", "sha256:..", "sha256:" + digest.Digest(strings.Repeat("A", 64)),
		"sha512:" + digest.Digest(strings.Repeat("a", 128)), "foo:bar/../../x",
	} {
		p := s.blobPath(bad)
		if filepath.Dir(p) != blobDir(root) {
			t.Errorf("Path(%q) = %s escapes %s", bad, p, blobDir(root))
		}
		if ValidateDigest(digest.NewDigestFromEncoded(digest.SHA256, filepath.Base(p))) == nil {
			t.Errorf("Path(%q) = %s looks like a blob", bad, p)
		}
	}
}

func TestRoundTrip(t *testing.T) {
	s, root := newStore(t)
	data := []byte("the quick brown fox jumps over the lazy dog")
	d := digest.FromBytes(data)

	w, err := s.NewWriter(d)
	if err != nil {
		t.Fatal(err)
	}
	if w.Expected() != d {
		t.Fatalf("Expected() = %s, want %s", w.Expected(), d)
	}
	if _, err := w.Write(data[:10]); err != nil {
		t.Fatal(err)
	}
	if _, err := w.WriteAt(data[10:], 10); err != nil {
		t.Fatal(err)
	}
	if w.Size() != int64(len(data)) || w.Digest() != d {
		t.Fatalf("Size/Digest = %d %s, want %d %s", w.Size(), w.Digest(), len(data), d)
	}
	if err := w.Prepare(); err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	if _, err := os.Stat(s.blobPath(d)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("blob visible before Commit: %v", err)
	}
	existed, err := w.Commit()
	if err != nil || existed {
		t.Fatalf("Commit = %v, %v; want false, nil", existed, err)
	}

	info, err := s.Stat(d)
	if err != nil {
		t.Fatal(err)
	}
	if info.Digest != d || info.Size != int64(len(data)) || info.ModTime.IsZero() {
		t.Fatalf("Stat = %+v", info)
	}
	f, err := s.Open(d, int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, err := io.ReadAll(f)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read back %q, %v; want %q", got, err, data)
	}
	fi, err := os.Stat(s.blobPath(d))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o444 || !fi.Mode().IsRegular() {
		t.Fatalf("committed blob mode = %v, want -r--r--r--", fi.Mode())
	}
	if left := names(t, ingestDir(root)); len(left) != 0 {
		t.Fatalf("ingest/ not empty after Commit: %q", left)
	}
}

func TestEmptyBlob(t *testing.T) {
	s, _ := newStore(t)
	d := mustWriteBytes(t, s, nil)
	if d != "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" {
		t.Fatalf("digest of nothing = %s", d)
	}
	if info, err := s.Stat(d); err != nil || info.Size != 0 {
		t.Fatalf("Stat(empty) = %+v, %v", info, err)
	}
}

func TestMismatchKeepsNothing(t *testing.T) {
	s, root := newStore(t)
	expected := digest.FromString("what was promised")
	w, err := s.NewWriter(expected)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("what was sent")); err != nil {
		t.Fatal(err)
	}
	_, err = w.Commit()
	if !errors.Is(err, ErrDigestMismatch) {
		t.Fatalf("Commit = %v, want ErrDigestMismatch", err)
	}
	msg := err.Error()
	for _, want := range []string{expected.String(), digest.FromString("what was sent").String(), "13 bytes"} {
		if !strings.Contains(msg, want) {
			t.Errorf("mismatch error %q does not mention %q", msg, want)
		}
	}
	if left := names(t, blobDir(root)); len(left) != 0 {
		t.Fatalf("blobs/sha256 after mismatch: %q", left)
	}
	if left := names(t, ingestDir(root)); len(left) != 0 {
		t.Fatalf("ingest after mismatch: %q", left)
	}
	if _, err := w.Write([]byte("more")); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("Write after failed Commit = %v, want os.ErrClosed", err)
	}
	if err := w.Abort(); err != nil {
		t.Fatalf("Abort after failed Commit: %v", err)
	}

	// WriteBytes refuses the same way.
	if _, err := s.WriteBytes(expected, []byte("what was sent")); !errors.Is(err, ErrDigestMismatch) {
		t.Fatalf("WriteBytes mismatch = %v", err)
	}
	if left := append(names(t, blobDir(root)), names(t, ingestDir(root))...); len(left) != 0 {
		t.Fatalf("files after WriteBytes mismatch: %q", left)
	}
}

func TestNonSequentialWriteRefused(t *testing.T) {
	s, _ := newStore(t)
	data := []byte("0123456789")
	w, err := s.NewWriter(digest.FromBytes(data))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	if _, err := w.WriteAt(data[:4], 0); err != nil {
		t.Fatal(err)
	}
	for _, off := range []int64{0, 2, 5, 100, -1} {
		n, err := w.WriteAt(data[4:], off)
		if !errors.Is(err, ErrNonSequentialWrite) || n != 0 {
			t.Fatalf("WriteAt(off=%d) after 4 bytes = %d, %v; want 0, ErrNonSequentialWrite", off, n, err)
		}
		if want := fmt.Sprintf("offset %d, but 4 bytes", off); !strings.Contains(err.Error(), want) {
			t.Fatalf("error %q does not say %q", err, want)
		}
	}
	if w.Size() != 4 {
		t.Fatalf("refused writes changed Size to %d", w.Size())
	}
	if _, err := w.WriteAt(data[4:], 4); err != nil {
		t.Fatal(err)
	}
	if existed, err := w.Commit(); err != nil || existed {
		t.Fatalf("Commit = %v, %v", existed, err)
	}
}

func TestExistingBlobKeepsItsInode(t *testing.T) {
	s, root := newStore(t)
	data := []byte("shared layer")
	d := mustWriteBytes(t, s, data)
	ino := inode(t, s.blobPath(d))

	existed, err := s.WriteBytes(d, data)
	if err != nil || !existed {
		t.Fatalf("second WriteBytes = %v, %v; want true, nil", existed, err)
	}
	w := writerWith(t, s, d, data)
	existed, err = w.Commit()
	if err != nil || !existed {
		t.Fatalf("Commit of an existing blob = %v, %v; want true, nil", existed, err)
	}
	if got := inode(t, s.blobPath(d)); got != ino {
		t.Fatalf("blob file replaced: inode %d, was %d", got, ino)
	}
	if left := names(t, ingestDir(root)); len(left) != 0 {
		t.Fatalf("ingest after existed Commit: %q", left)
	}
}

// WriteBytes of a blob the store has must not even create an ingest file:
// with ingest/ replaced by a regular file, any attempt would fail.
func TestWriteBytesOfExistingBlobWritesNothing(t *testing.T) {
	s, root := newStore(t)
	data := []byte("manifest bytes")
	d := mustWriteBytes(t, s, data)
	if err := os.Remove(ingestDir(root)); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(ingestDir(root), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	existed, err := s.WriteBytes(d, data)
	if err != nil || !existed {
		t.Fatalf("WriteBytes of existing blob = %v, %v; want true, nil", existed, err)
	}
	// The check is real: a new blob does need ingest/.
	if _, err := s.WriteBytes(digest.FromString("new"), []byte("new")); err == nil {
		t.Fatal("WriteBytes of a new blob succeeded without an ingest directory")
	}
}

func TestInvalidDigestsRefused(t *testing.T) {
	s, root := newStore(t)
	unsupported := []digest.Digest{
		"sha512:" + digest.Digest(strings.Repeat("a", 128)),
		"sha384:" + digest.Digest(strings.Repeat("a", 96)),
		"md5:d41d8cd98f00b204e9800998ecf8427e",
		"blake3:" + digest.Digest(strings.Repeat("a", 64)),
	}
	malformed := []digest.Digest{
		"", "sha256", "sha256:", ":abc", "nocolon",
		"sha256:" + digest.Digest(strings.Repeat("A", 64)),
		"sha256:" + digest.Digest(strings.Repeat("a", 63)),
		"sha256:" + digest.Digest(strings.Repeat("a", 65)),
		"sha256:../../../../../../../../etc/passwd",
		"sha256:" + digest.Digest(strings.Repeat("a", 62)) + "/x",
		"../" + digest.Digest(strings.Repeat("a", 64)),
	}
	ops := map[string]func(digest.Digest) error{
		"NewWriter":  func(d digest.Digest) error { _, err := s.NewWriter(d); return err },
		"Stat":       func(d digest.Digest) error { _, err := s.Stat(d); return err },
		"Open":       func(d digest.Digest) error { _, err := s.Open(d, -1); return err },
		"Delete":     s.Delete,
		"WriteBytes": func(d digest.Digest) error { _, err := s.WriteBytes(d, []byte("x")); return err },
	}
	for name, op := range ops {
		for _, d := range unsupported {
			if err := op(d); !errors.Is(err, ErrUnsupportedDigest) {
				t.Errorf("%s(%q) = %v, want ErrUnsupportedDigest", name, d, err)
			}
		}
		for _, d := range malformed {
			err := op(d)
			if err == nil || errors.Is(err, ErrUnsupportedDigest) || errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s(%q) = %v, want a malformed-digest error", name, d, err)
				continue
			}
			if !errors.Is(err, digest.ErrDigestInvalidFormat) && !errors.Is(err, digest.ErrDigestInvalidLength) {
				t.Errorf("%s(%q) = %v, want it to wrap go-digest's reason", name, d, err)
			}
			if !strings.Contains(err.Error(), fmt.Sprintf("%q", string(d))) {
				t.Errorf("%s(%q) error %q does not name the digest", name, d, err)
			}
		}
	}
	if left := append(names(t, blobDir(root)), names(t, ingestDir(root))...); len(left) != 0 {
		t.Fatalf("invalid digests left files: %q", left)
	}
}

func TestMissingBlob(t *testing.T) {
	s, _ := newStore(t)
	d := digest.FromString("never written")
	if _, err := s.Stat(d); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Stat of missing blob = %v, want os.ErrNotExist", err)
	} else if !strings.Contains(err.Error(), d.String()) {
		t.Fatalf("Stat error %q does not name the blob", err)
	}
	if _, err := s.Open(d, 1); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Open of missing blob = %v, want os.ErrNotExist", err)
	}
	if err := s.Delete(d); err != nil {
		t.Fatalf("Delete of missing blob = %v, want nil", err)
	}
}

func TestDelete(t *testing.T) {
	s, _ := newStore(t)
	d := mustWriteBytes(t, s, []byte("doomed"))
	if err := s.Delete(d); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Stat(d); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Stat after Delete = %v", err)
	}
	// It can be written again afterwards.
	mustWriteBytes(t, s, []byte("doomed"))
}

func TestWalk(t *testing.T) {
	s, root := newStore(t)
	want := map[digest.Digest]int64{}
	for _, data := range []string{"a", "bb", "ccc"} {
		want[mustWriteBytes(t, s, []byte(data))] = int64(len(data))
	}
	// Things in the directory that are not blobs.
	junk := []string{"README", strings.Repeat("A", 64), strings.Repeat("a", 63), invalidDigestName}
	for _, name := range junk {
		if err := os.WriteFile(filepath.Join(blobDir(root), name), []byte("junk"), 0o444); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(blobDir(root), strings.Repeat("d", 64)), 0o755); err != nil {
		t.Fatal(err)
	}

	got := map[digest.Digest]int64{}
	err := s.Walk(func(info Info) error {
		if _, dup := got[info.Digest]; dup {
			t.Errorf("Walk reported %s twice", info.Digest)
		}
		if info.ModTime.IsZero() {
			t.Errorf("Walk gave %s no ModTime", info.Digest)
		}
		got[info.Digest] = info.Size
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("Walk = %v, want %v", got, want)
	}

	stop := errors.New("stop here")
	calls := 0
	err = s.Walk(func(Info) error { calls++; return stop })
	if !errors.Is(err, stop) || calls != 1 {
		t.Fatalf("Walk with a failing fn = %v after %d calls, want the fn's error after 1", err, calls)
	}
}

// Walk reads the directory in batches; every blob is still reported once.
func TestWalkManyBlobs(t *testing.T) {
	s, root := newStore(t)
	const n = 3*walkBatch + 17
	want := make(map[digest.Digest]bool, n)
	for i := 0; i < n; i++ {
		// Walk does not read the bytes, so plain files with hex names do.
		d := digest.FromString(fmt.Sprint(i))
		want[d] = true
		if err := os.WriteFile(filepath.Join(blobDir(root), d.Encoded()), nil, 0o444); err != nil {
			t.Fatal(err)
		}
	}
	got := make(map[digest.Digest]bool, n)
	if err := s.Walk(func(info Info) error {
		if got[info.Digest] {
			t.Fatalf("Walk reported %s twice", info.Digest)
		}
		got[info.Digest] = true
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(got) != n {
		t.Fatalf("Walk reported %d blobs, want %d", len(got), n)
	}
	for d := range want {
		if !got[d] {
			t.Fatalf("Walk missed %s", d)
		}
	}
}

func TestIngests(t *testing.T) {
	s, root := newStore(t)
	// The bytes match the digest, so only the missing file can stop Commit.
	d := digest.FromString("in progress")
	w, err := s.NewWriter(d)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	if _, err := w.Write([]byte("in progress")); err != nil {
		t.Fatal(err)
	}
	var ingests []IngestInfo
	if err := s.WalkIngests(func(info IngestInfo) error { ingests = append(ingests, info); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(ingests) != 1 || ingests[0].Size != 11 || ingests[0].ModTime.IsZero() ||
		!strings.HasPrefix(ingests[0].Name, d.Encoded()+"-") {
		t.Fatalf("WalkIngests = %+v, want one %s-* of 11 bytes", ingests, d.Encoded())
	}

	for _, bad := range []string{"", ".", "..", "../blobs", "a/b", "/etc/passwd", "x..y", "a\x00b"} {
		if err := s.RemoveIngest(bad); !errors.Is(err, os.ErrInvalid) {
			t.Errorf("RemoveIngest(%q) = %v, want os.ErrInvalid", bad, err)
		}
	}
	if _, err := os.Stat(filepath.Join(root, "blobs")); err != nil {
		t.Fatalf("RemoveIngest(\"../blobs\") touched the store: %v", err)
	}

	if err := s.RemoveIngest(ingests[0].Name); err != nil {
		t.Fatal(err)
	}
	if left := names(t, ingestDir(root)); len(left) != 0 {
		t.Fatalf("ingest after RemoveIngest: %q", left)
	}
	if err := s.RemoveIngest(ingests[0].Name); err != nil {
		t.Fatalf("RemoveIngest of a gone ingest = %v, want nil", err)
	}
	// The writer whose file gc removed cannot publish a partial blob.
	if _, err := w.Commit(); err == nil {
		t.Fatal("Commit succeeded after its ingest was removed")
	}
	if _, err := s.Stat(d); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("blob published without its bytes: %v", err)
	}
}

func TestAbort(t *testing.T) {
	s, root := newStore(t)
	data := []byte("abandoned")
	d := digest.FromBytes(data)
	w := writerWith(t, s, d, data)
	if err := w.Abort(); err != nil {
		t.Fatal(err)
	}
	if err := w.Abort(); err != nil {
		t.Fatalf("second Abort: %v", err)
	}
	if left := names(t, ingestDir(root)); len(left) != 0 {
		t.Fatalf("ingest after Abort: %q", left)
	}
	if _, err := w.Write(data); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("Write after Abort = %v, want os.ErrClosed", err)
	}
	if _, err := w.Commit(); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("Commit after Abort = %v, want os.ErrClosed", err)
	}
	if _, err := s.Stat(d); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("aborted blob visible: %v", err)
	}

	// Abort after Commit leaves the blob alone.
	w = writerWith(t, s, d, data)
	if _, err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := w.Abort(); err != nil {
		t.Fatalf("Abort after Commit: %v", err)
	}
	if _, err := s.Stat(d); err != nil {
		t.Fatalf("Abort after Commit removed the blob: %v", err)
	}
	if _, err := w.Commit(); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("second Commit = %v, want os.ErrClosed", err)
	}
}

// fillPattern fills buf with bytes that depend on the running state, so a
// large blob is not one repeated chunk, without allocating.
func fillPattern(buf []byte, state *uint64) {
	for i := 0; i+8 <= len(buf); i += 8 {
		*state ^= *state << 13
		*state ^= *state >> 7
		*state ^= *state << 17
		for j := 0; j < 8; j++ {
			buf[i+j] = byte(*state >> (8 * j))
		}
	}
}

// totalAlloc is the number of heap bytes allocated so far by the process.
func totalAlloc() uint64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.TotalAlloc
}

// A large blob streams through a constant amount of memory.
func TestLargeStreamedWriteHasBoundedMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 64 MiB")
	}
	s, _ := newStore(t)
	const chunk, total = 1 << 20, 64 << 20
	buf := make([]byte, chunk)

	// The expected digest, from the same stream.
	state := uint64(0x9e3779b97f4a7c15)
	digester := digest.SHA256.Digester()
	for written := 0; written < total; written += chunk {
		fillPattern(buf, &state)
		digester.Hash().Write(buf)
	}
	expected := digester.Digest()

	before := totalAlloc()
	w, err := s.NewWriter(expected)
	if err != nil {
		t.Fatal(err)
	}
	state = 0x9e3779b97f4a7c15
	for written := int64(0); written < total; written += chunk {
		fillPattern(buf, &state)
		if _, err := w.WriteAt(buf, written); err != nil {
			t.Fatal(err)
		}
	}
	existed, err := w.Commit()
	allocated := totalAlloc() - before
	if err != nil || existed {
		t.Fatalf("Commit = %v, %v", existed, err)
	}
	if allocated > 1<<20 {
		t.Fatalf("streaming %d MiB allocated %d bytes; the ingest must not buffer", total>>20, allocated)
	}
	if info, err := s.Stat(expected); err != nil || info.Size != total {
		t.Fatalf("Stat = %+v, %v", info, err)
	}
}

func TestConcurrentWritersOfOneBlob(t *testing.T) {
	s, root := newStore(t)
	data := bytes.Repeat([]byte("layer "), 100000)
	d := digest.FromBytes(data)
	const writers = 8
	var wg sync.WaitGroup
	results := make([]bool, writers)
	errs := make([]error, writers)
	for i := 0; i < writers; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			if i%2 == 0 {
				results[i], errs[i] = s.WriteBytes(d, data)
				return
			}
			w, err := s.NewWriter(d)
			if err != nil {
				errs[i] = err
				return
			}
			defer w.Abort()
			for off := 0; off < len(data); off += 4096 {
				if _, err := w.Write(data[off:min(off+4096, len(data))]); err != nil {
					errs[i] = err
					return
				}
			}
			results[i], errs[i] = w.Commit()
		}(i)
	}
	wg.Wait()
	published := 0
	for i := range errs {
		if errs[i] != nil {
			t.Fatalf("writer %d: %v", i, errs[i])
		}
		if !results[i] {
			published++
		}
	}
	// RENAME_NOREPLACE lets exactly one publish; with the fallback
	// racing writers may each rename identical bytes into place.
	if published != 1 && !noReplaceUnsupported.Load() || published < 1 {
		t.Fatalf("%d writers published the blob, want exactly 1", published)
	}
	f, err := s.Open(d, int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if got, err := io.ReadAll(f); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("blob content wrong after concurrent writes (%d bytes, %v)", len(got), err)
	}
	if left := names(t, ingestDir(root)); len(left) != 0 {
		t.Fatalf("ingest after concurrent writers: %q", left)
	}
	if left := names(t, blobDir(root)); len(left) != 1 {
		t.Fatalf("blobs/sha256 = %q, want the one blob", left)
	}
}

// Both ways of publishing leave an existing entry alone and report it.
func TestPublishNoReplaceNeverReplaces(t *testing.T) {
	for name, publish := range map[string]func(fromDir *os.File, from string, toDir *os.File, to string) (bool, error){
		"publishNoReplace": publishNoReplace,
		"publishByStat":    publishByStat,
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			d, err := os.Open(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			if err := os.WriteFile(filepath.Join(dir, "temp"), []byte("new"), 0o444); err != nil {
				t.Fatal(err)
			}
			existed, err := publish(d, "temp", d, "target")
			if err != nil || existed {
				t.Fatalf("%s to a free name = %v, %v", name, existed, err)
			}
			if err := os.WriteFile(filepath.Join(dir, "temp"), []byte("second"), 0o444); err != nil {
				t.Fatal(err)
			}
			existed, err = publish(d, "temp", d, "target")
			if err != nil || !existed {
				t.Fatalf("%s over an existing name = %v, %v; want true, nil", name, existed, err)
			}
			if got, _ := os.ReadFile(filepath.Join(dir, "target")); string(got) != "new" {
				t.Fatalf("existing target replaced: %q", got)
			}
			// A dangling link is an entry too: it is not replaced here
			// (Commit decides that), and what it names is not created.
			if err := os.Symlink(filepath.Join(dir, "nowhere"), filepath.Join(dir, "link")); err != nil {
				t.Fatal(err)
			}
			if existed, err := publish(d, "temp", d, "link"); err != nil || !existed {
				t.Fatalf("%s over a dangling link = %v, %v; want true, nil", name, existed, err)
			}
			if _, err := os.Lstat(filepath.Join(dir, "nowhere")); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("%s created the link's target: %v", name, err)
			}
		})
	}
}

// A failed publish names both files.
func TestPublishErrorNamesBoth(t *testing.T) {
	s, _ := newStore(t)
	d := digest.FromString("x")
	_, err := s.publish("missing", d, 1)
	if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "ingest/missing") || !strings.Contains(err.Error(), d.Encoded()) {
		t.Fatalf("publish of a missing temp = %v", err)
	}
}

// Writer methods may race (FUSE serves one handle's requests
// concurrently); the race detector checks they are safe.
func TestWriterConcurrentUse(t *testing.T) {
	s, _ := newStore(t)
	chunk := bytes.Repeat([]byte{'x'}, 1000)
	var all []byte
	for i := 0; i < 100; i++ {
		all = append(all, chunk...)
	}
	w, err := s.NewWriter(digest.FromBytes(all))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 25; i++ {
				if _, err := w.Write(chunk); err != nil {
					t.Error(err)
					return
				}
				_ = w.Size()
				_ = w.Digest()
			}
		}()
	}
	wg.Wait()
	if w.Size() != int64(len(all)) {
		t.Fatalf("Size = %d after concurrent writes, want %d", w.Size(), len(all))
	}
	if existed, err := w.Commit(); err != nil || existed {
		t.Fatalf("Commit = %v, %v", existed, err)
	}
}

// The blob file names Walk accepts are the encoded parts of the digests
// ValidateDigest accepts.
func TestValidateDigestEncodedPart(t *testing.T) {
	tests := map[string]bool{
		strings.Repeat("0", 64):                      true,
		"0123456789abcdef" + strings.Repeat("f", 48): true,
		strings.Repeat("A", 64):                      false,
		strings.Repeat("g", 64):                      false,
		strings.Repeat("a", 63):                      false,
		strings.Repeat("a", 65):                      false,
		"":                                           false,
		invalidDigestName:                            false,
	}
	var keys []string
	for k := range tests {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, name := range keys {
		if got := ValidateDigest(digest.NewDigestFromEncoded(digest.SHA256, name)) == nil; got != tests[name] {
			t.Errorf("ValidateDigest(sha256:%s) accepted = %v, want %v", name, got, tests[name])
		}
	}
}

// Prepare does the slow half of Commit (verify, fsync) so that a caller
// can run it outside its lock; Commit then only publishes. A blob that
// existed at Prepare but is gone at Commit is still published read-only.
func TestPrepareThenCommit(t *testing.T) {
	s, root := newStore(t)
	data := []byte("prepared layer")
	d := digest.FromBytes(data)

	w := writerWith(t, s, d, data)
	if err := w.Prepare(); err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	if _, err := w.Write([]byte("more")); err == nil {
		t.Fatal("Write after Prepare succeeded")
	}
	if _, err := os.Stat(s.blobPath(d)); !os.IsNotExist(err) {
		t.Fatalf("blob visible before Commit: %v", err)
	}
	if existed, err := w.Commit(); err != nil || existed {
		t.Fatalf("Commit = %v, %v; want false, nil", existed, err)
	}
	if got, _ := os.ReadFile(s.blobPath(d)); string(got) != string(data) {
		t.Fatalf("published %q, want %q", got, data)
	}

	// Prepared while another copy existed, committed after it was deleted.
	w = writerWith(t, s, d, data)
	if err := w.Prepare(); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(d); err != nil {
		t.Fatal(err)
	}
	if existed, err := w.Commit(); err != nil || existed {
		t.Fatalf("Commit after the other copy went = %v, %v; want false, nil", existed, err)
	}
	fi, err := os.Stat(s.blobPath(d))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o444 {
		t.Fatalf("published with mode %v, want 0444", fi.Mode().Perm())
	}

	// A mismatch found by Prepare keeps nothing.
	w, err = s.NewWriter(digest.FromBytes([]byte("other")))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Prepare(); !errors.Is(err, ErrDigestMismatch) {
		t.Fatalf("Prepare of wrong bytes = %v, want ErrDigestMismatch", err)
	}
	if left := names(t, ingestDir(root)); len(left) != 0 {
		t.Fatalf("ingest after a failed Prepare: %q", left)
	}
}
