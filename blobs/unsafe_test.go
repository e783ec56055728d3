package blobs

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"
)

// outsideDir is a directory outside the store with one file the tests
// check nobody touched: it stands for /etc, and its file for /etc/shadow.
func outsideDir(t *testing.T) (dir, secretPath string, secret []byte) {
	t.Helper()
	dir = t.TempDir()
	secret = []byte("root:$6$secret-hash:19000:0:99999:7:::\n")
	secretPath = filepath.Join(dir, "shadow")
	if err := os.WriteFile(secretPath, secret, 0o600); err != nil {
		t.Fatal(err)
	}
	return dir, secretPath, secret
}

// assertOutsideUntouched checks that dir still holds exactly its secret.
func assertOutsideUntouched(t *testing.T, dir, secretPath string, secret []byte) {
	t.Helper()
	if got := names(t, dir); len(got) != 1 || got[0] != filepath.Base(secretPath) {
		t.Errorf("directory outside the store now holds %q, want only %s", got, filepath.Base(secretPath))
	}
	if got, err := os.ReadFile(secretPath); err != nil || !bytes.Equal(got, secret) {
		t.Errorf("file outside the store changed: %q, %v", got, err)
	}
}

func TestOpenRefusesLinksAndFilesForItsDirectories(t *testing.T) {
	for _, rel := range []string{"blobs", "blobs/sha256", "ingest"} {
		t.Run(strings.ReplaceAll(rel, "/", "_")+"_symlink", func(t *testing.T) {
			root := t.TempDir()
			outside, secretPath, secret := outsideDir(t)
			if err := os.MkdirAll(filepath.Dir(filepath.Join(root, rel)), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(outside, filepath.Join(root, rel)); err != nil {
				t.Fatal(err)
			}
			s, err := Open(root)
			if err == nil {
				s.Close()
				t.Fatalf("Open with %s a symlink succeeded", rel)
			}
			if !errors.Is(err, ErrUnsafe) {
				t.Errorf("Open with %s a symlink = %v, want ErrUnsafe", rel, err)
			}
			want := "blob store " + root + ": " + rel + " is a symlink, not a directory; nsfs never follows links in its store"
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not say %q", err, want)
			}
			assertOutsideUntouched(t, outside, secretPath, secret)
			if fi, err := os.Lstat(filepath.Join(root, rel)); err != nil || fi.Mode()&os.ModeSymlink == 0 {
				t.Errorf("the link %s was not left alone: %v, %v", rel, fi, err)
			}
		})
		t.Run(strings.ReplaceAll(rel, "/", "_")+"_file", func(t *testing.T) {
			root := t.TempDir()
			if err := os.MkdirAll(filepath.Dir(filepath.Join(root, rel)), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(root, rel), []byte("x"), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := Open(root)
			if !errors.Is(err, ErrUnsafe) || !strings.Contains(err.Error(), rel+" is a regular file, not a directory") {
				t.Fatalf("Open with %s a regular file = %v, want ErrUnsafe naming it", rel, err)
			}
		})
	}
}

// Once open, the store works in the directories it opened: swapping one
// for a link afterwards redirects nothing.
func TestStoreKeepsTheDirectoriesItOpened(t *testing.T) {
	s, root := newStore(t)
	outside, secretPath, secret := outsideDir(t)
	for _, rel := range []string{"ingest", "blobs/sha256"} {
		if err := os.Rename(filepath.Join(root, rel), filepath.Join(root, rel+".moved")); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(outside, filepath.Join(root, rel)); err != nil {
			t.Fatal(err)
		}
	}
	data := []byte("lands in the store")
	d := mustWriteBytes(t, s, data)
	w := writerWith(t, s, digest.FromString("abandoned"), []byte("abandoned"))
	if err := w.Abort(); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(digest.FromString("shadow")); err != nil {
		t.Fatal(err)
	}
	assertOutsideUntouched(t, outside, secretPath, secret)
	if got, err := os.ReadFile(filepath.Join(root, "blobs/sha256.moved", d.Encoded())); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("blob not in the directory the store opened: %q, %v", got, err)
	}
}

// plant puts something other than a sound blob at blob d's name.
type plant struct {
	name    string
	make    func(t *testing.T, path, secretPath string)
	kind    error  // what Open and Check say
	message string // what the error says of it
}

func plants(size int) []plant {
	return []plant{
		{"symlink", func(t *testing.T, path, secretPath string) {
			if err := os.Symlink(secretPath, path); err != nil {
				t.Fatal(err)
			}
		}, ErrUnsafe, "is a symlink, not a regular file; nsfs never follows links in its store"},
		{"fifo", func(t *testing.T, path, _ string) {
			if err := unix.Mkfifo(path, 0o644); err != nil {
				t.Fatal(err)
			}
		}, ErrUnsafe, "is a fifo, not a regular file"},
		{"device", func(t *testing.T, path, _ string) {
			// /dev/null's numbers: reading it would "work", and say nothing.
			if err := unix.Mknod(path, unix.S_IFCHR|0o644, int(unix.Mkdev(1, 3))); err != nil {
				t.Skipf("mknod: %v", err)
			}
		}, ErrUnsafe, "is a device, not a regular file"},
		{"short file", func(t *testing.T, path, _ string) {
			if err := os.WriteFile(path, []byte("cut"), 0o444); err != nil {
				t.Fatal(err)
			}
		}, ErrDamaged, "has 3 bytes, not the blob's " + strconv.Itoa(size)},
	}
}

// openWithin is s.Open, failing the test if it blocks (a fifo's open
// would wait for a writer forever).
func openWithin(t *testing.T, s *Store, d digest.Digest, size int64) (*os.File, error) {
	t.Helper()
	type result struct {
		f   *os.File
		err error
	}
	done := make(chan result, 1)
	go func() {
		f, err := s.Open(d, size)
		done <- result{f, err}
	}()
	select {
	case r := <-done:
		return r.f, r.err
	case <-time.After(10 * time.Second):
		t.Fatalf("Open(%s) blocked", d)
		return nil, nil
	}
}

func TestPlantedBlobIsNeverReadAndCommitReplacesIt(t *testing.T) {
	data := []byte("the honest bytes of a layer")
	d := digest.FromBytes(data)
	for _, p := range plants(len(data)) {
		for _, how := range []string{"Commit", "WriteBytes"} {
			t.Run(p.name+"/"+how, func(t *testing.T) {
				s, root := newStore(t)
				outside, secretPath, secret := outsideDir(t)
				target := filepath.Join(blobDir(root), d.Encoded())
				p.make(t, target, secretPath)

				f, err := openWithin(t, s, d, int64(len(data)))
				if err == nil {
					f.Close()
					t.Fatalf("Open of a planted %s succeeded", p.name)
				}
				if !errors.Is(err, p.kind) || !strings.Contains(err.Error(), "blobs/sha256/"+d.Encoded()+" "+p.message) {
					t.Fatalf("Open of a planted %s = %v, want %v saying %q", p.name, err, p.kind, p.message)
				}
				if err := s.Check(d, int64(len(data))); !errors.Is(err, p.kind) {
					t.Fatalf("Check of a planted %s = %v, want %v", p.name, err, p.kind)
				}
				if info, err := s.Stat(d); err != nil || info.Mode.IsRegular() != (p.kind == ErrDamaged) {
					t.Fatalf("Stat of a planted %s = %+v, %v; want lstat's view", p.name, info, err)
				}

				var existed bool
				if how == "Commit" {
					existed, err = writerWith(t, s, d, data).Commit()
				} else {
					existed, err = s.WriteBytes(d, data)
				}
				if err != nil || existed {
					t.Fatalf("%s of the honest bytes over a planted %s = %v, %v; want false, nil", how, p.name, existed, err)
				}
				fi, err := os.Lstat(target)
				if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm() != blobMode {
					t.Fatalf("after %s the blob's name is %v, %v; want a 0444 regular file", how, fi, err)
				}
				if got, err := os.ReadFile(target); err != nil || !bytes.Equal(got, data) {
					t.Fatalf("after %s the blob holds %q, %v", how, got, err)
				}
				f, err = s.Open(d, int64(len(data)))
				if err != nil {
					t.Fatalf("Open after the repair: %v", err)
				}
				f.Close()
				assertOutsideUntouched(t, outside, secretPath, secret)
				if left := names(t, ingestDir(root)); len(left) != 0 {
					t.Fatalf("ingest/ after %s: %q", how, left)
				}
				// Sound now: another commit keeps it.
				if existed, err := s.WriteBytes(d, data); err != nil || !existed {
					t.Fatalf("WriteBytes of the repaired blob = %v, %v; want true, nil", existed, err)
				}
			})
		}
	}
}

// A regular file of the right size is taken as the blob without reading
// it (fsck hashes); Open of any size accepts it too.
func TestSoundFileIsTheBlob(t *testing.T) {
	s, root := newStore(t)
	data := []byte("twelve bytes")
	d := mustWriteBytes(t, s, data)
	ino := inode(t, filepath.Join(blobDir(root), d.Encoded()))
	if existed, err := writerWith(t, s, d, data).Commit(); err != nil || !existed {
		t.Fatalf("Commit over a sound blob = %v, %v", existed, err)
	}
	if got := inode(t, filepath.Join(blobDir(root), d.Encoded())); got != ino {
		t.Fatal("a sound blob was replaced")
	}
	f, err := s.Open(d, -1)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if _, err := s.Open(d, 13); !errors.Is(err, ErrDamaged) {
		t.Fatalf("Open expecting 13 bytes of a 12-byte file = %v, want ErrDamaged", err)
	}
}

func TestDirectoryAtABlobNameIsRefused(t *testing.T) {
	s, root := newStore(t)
	data := []byte("blocked by a directory")
	d := digest.FromBytes(data)
	target := filepath.Join(blobDir(root), d.Encoded())
	if err := os.Mkdir(target, 0o755); err != nil {
		t.Fatal(err)
	}
	for how, commit := range map[string]func() (bool, error){
		"Commit":     func() (bool, error) { return writerWith(t, s, d, data).Commit() },
		"WriteBytes": func() (bool, error) { return s.WriteBytes(d, data) },
	} {
		if _, err := commit(); !errors.Is(err, ErrUnsafe) || !strings.Contains(err.Error(), "is a directory") {
			t.Fatalf("%s over a directory = %v, want ErrUnsafe", how, err)
		}
		if fi, err := os.Lstat(target); err != nil || !fi.IsDir() {
			t.Fatalf("the directory did not stay: %v, %v", fi, err)
		}
		if left := names(t, ingestDir(root)); len(left) != 0 {
			t.Fatalf("ingest/ after a refused %s: %q", how, left)
		}
	}
	if _, err := s.Open(d, -1); !errors.Is(err, ErrUnsafe) {
		t.Fatalf("Open of a directory = %v, want ErrUnsafe", err)
	}
	if err := s.Delete(d); !errors.Is(err, ErrUnsafe) {
		t.Fatalf("Delete of a directory = %v, want ErrUnsafe", err)
	}
}

func TestDeleteAndRemoveIngestRemoveOnlyRegularFiles(t *testing.T) {
	s, root := newStore(t)
	outside, secretPath, secret := outsideDir(t)
	d := digest.FromString("planted")
	links := map[string]string{
		filepath.Join(blobDir(root), d.Encoded()): "blob",
		filepath.Join(ingestDir(root), "link"):    "ingest",
	}
	for path := range links {
		if err := os.Symlink(secretPath, path); err != nil {
			t.Fatal(err)
		}
	}
	if err := unix.Mkfifo(filepath.Join(ingestDir(root), "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(ingestDir(root), "dir"), 0o755); err != nil {
		t.Fatal(err)
	}

	if err := s.Delete(d); !errors.Is(err, ErrUnsafe) || !strings.Contains(err.Error(), "left alone") {
		t.Errorf("Delete of a symlink = %v, want ErrUnsafe", err)
	}
	for _, name := range []string{"link", "fifo", "dir"} {
		if err := s.RemoveIngest(name); !errors.Is(err, ErrUnsafe) || !strings.Contains(err.Error(), "ingest/"+name) {
			t.Errorf("RemoveIngest(%s) = %v, want ErrUnsafe naming it", name, err)
		}
	}
	for path := range links {
		if fi, err := os.Lstat(path); err != nil || fi.Mode()&os.ModeSymlink == 0 {
			t.Errorf("%s was removed: %v", path, err)
		}
	}
	if got := names(t, ingestDir(root)); strings.Join(got, " ") != "dir fifo link" {
		t.Errorf("ingest/ = %q, want everything left", got)
	}
	assertOutsideUntouched(t, outside, secretPath, secret)

	// Regular files still go.
	if err := os.WriteFile(filepath.Join(ingestDir(root), "left-over"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.RemoveIngest("left-over"); err != nil {
		t.Fatal(err)
	}
	d2 := mustWriteBytes(t, s, []byte("real"))
	if err := s.Delete(d2); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Stat(d2); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Stat after Delete = %v", err)
	}
}

func TestWalkEntriesReportEverything(t *testing.T) {
	s, root := newStore(t)
	_, secretPath, _ := outsideDir(t)
	blob := mustWriteBytes(t, s, []byte("a blob"))
	link := digest.FromString("link")
	if err := os.Symlink(secretPath, filepath.Join(blobDir(root), link.Encoded())); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mkfifo(filepath.Join(blobDir(root), "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(secretPath, filepath.Join(ingestDir(root), "link")); err != nil {
		t.Fatal(err)
	}
	w := writerWith(t, s, digest.FromString("x"), []byte("x"))
	defer w.Abort()

	got := map[string]os.FileMode{}
	if err := s.walkBlobEntries(func(e Entry) error {
		if e.Path != "blobs/sha256/"+e.Name || e.ModTime.IsZero() {
			t.Errorf("entry %+v", e)
		}
		got[e.Path] = e.Mode.Type()
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	want := map[string]os.FileMode{
		"blobs/sha256/" + blob.Encoded(): 0,
		"blobs/sha256/" + link.Encoded(): os.ModeSymlink,
		"blobs/sha256/fifo":              os.ModeNamedPipe,
	}
	if len(got) != len(want) {
		t.Fatalf("walkBlobEntries = %v, want %v", got, want)
	}
	for p, m := range want {
		if got[p] != m {
			t.Errorf("walkBlobEntries: %s is %v, want %v", p, got[p], m)
		}
	}
	var walked []digest.Digest
	if err := s.Walk(func(info Info) error { walked = append(walked, info.Digest); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(walked) != 1 || walked[0] != blob {
		t.Fatalf("Walk = %v, want only the regular blob %s", walked, blob)
	}

	kinds := map[os.FileMode]int{}
	if err := s.walkIngestEntries(func(e Entry) error {
		if e.Path != "ingest/"+e.Name {
			t.Errorf("entry %+v", e)
		}
		kinds[e.Mode.Type()]++
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(kinds) != 2 || kinds[0] != 1 || kinds[os.ModeSymlink] != 1 {
		t.Fatalf("walkIngestEntries kinds = %v, want one regular file and one link", kinds)
	}
	var ingests []IngestInfo
	if err := s.WalkIngests(func(in IngestInfo) error { ingests = append(ingests, in); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(ingests) != 1 || ingests[0].Name == "link" {
		t.Fatalf("WalkIngests = %+v, want only the writer's file", ingests)
	}
	if e, err := s.StatIngest("link"); err != nil || e.Mode&os.ModeSymlink == 0 {
		t.Fatalf("StatIngest(link) = %+v, %v", e, err)
	}
}

// smallTmpfs mounts a 1 MiB tmpfs for a store that runs out of space.
func smallTmpfs(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root")
	}
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=1m"); err != nil {
		t.Skipf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, 0); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

func errnoOf(err error) syscall.Errno {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno
	}
	return 0
}

// A full disk ends the ingest with ENOSPC, and every later call says so
// too: never a digest mismatch of the bytes that did not arrive. Writes of
// 64 KiB are hashed in line, writes of 512 KiB while they are written.
func TestFullDiskIsStickyENOSPC(t *testing.T) {
	for _, chunk := range []int64{64 << 10, 512 << 10} {
		t.Run(strconv.FormatInt(chunk>>10, 10)+"KiB", func(t *testing.T) { fullDiskIsStickyENOSPC(t, chunk) })
	}
}

func fullDiskIsStickyENOSPC(t *testing.T, chunk int64) {
	root := smallTmpfs(t)
	s, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	data := bytes.Repeat([]byte("full disk "), 200<<10) // 2 MB
	d := digest.FromBytes(data)
	w, err := s.NewWriter(d)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	var writeErr error
	var off int64
	for off < int64(len(data)) && writeErr == nil {
		var n int
		n, writeErr = w.WriteAt(data[off:min(off+chunk, int64(len(data)))], off)
		off += int64(n)
	}
	if errnoOf(writeErr) != syscall.ENOSPC {
		t.Fatalf("writing 2 MB to a 1 MiB tmpfs = %v, want ENOSPC", writeErr)
	}
	if !strings.Contains(writeErr.Error(), d.String()) {
		t.Errorf("error %q does not name the blob", writeErr)
	}
	if left := names(t, ingestDir(root)); len(left) != 0 {
		t.Fatalf("ingest/ after ENOSPC: %q, want the file removed", left)
	}
	for name, call := range map[string]func() error{
		"Write":           func() error { _, err := w.Write(data[:10]); return err },
		"WriteAt in turn": func() error { _, err := w.WriteAt(data[off:off+10], off); return err },
		"WriteAt later":   func() error { _, err := w.WriteAt(data[:10], off+4096); return err },
		"Prepare":         w.Prepare,
		"Commit":          func() error { _, err := w.Commit(); return err },
	} {
		err := call()
		if errnoOf(err) != syscall.ENOSPC || errors.Is(err, ErrDigestMismatch) || errors.Is(err, ErrNonSequentialWrite) {
			t.Errorf("%s after ENOSPC = %v, want the same ENOSPC", name, err)
		}
	}
	if err := w.Abort(); err != nil {
		t.Errorf("Abort after ENOSPC: %v", err)
	}
	if _, err := s.Stat(d); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("blob visible after ENOSPC: %v", err)
	}
	// The space is back: a blob that fits goes in.
	mustWriteBytes(t, s, []byte("fits"))
	// WriteBytes of a blob too large reports ENOSPC too.
	if _, err := s.WriteBytes(d, data); errnoOf(err) != syscall.ENOSPC {
		t.Fatalf("WriteBytes on a full disk = %v, want ENOSPC", err)
	}
}

// Running out of descriptors is EMFILE, findable with errors.As, from
// NewWriter and Open alike.
func TestOutOfDescriptorsIsEMFILE(t *testing.T) {
	s, _ := newStore(t)
	d := mustWriteBytes(t, s, []byte("a blob"))
	var old unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &old); err != nil {
		t.Fatal(err)
	}
	open, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("count descriptors: %v", err)
	}
	lowered := old
	lowered.Cur = uint64(len(open) + 16)
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &lowered); err != nil {
		t.Skipf("setrlimit: %v", err)
	}
	var writers []*Writer
	defer func() {
		for _, w := range writers {
			w.Abort()
		}
	}()
	defer unix.Setrlimit(unix.RLIMIT_NOFILE, &old)
	var newErr error
	for i := 0; i < 64 && newErr == nil; i++ {
		var w *Writer
		if w, newErr = s.NewWriter(d); newErr == nil {
			writers = append(writers, w)
		}
	}
	if errnoOf(newErr) != syscall.EMFILE {
		t.Fatalf("NewWriter out of descriptors = %v, want EMFILE", newErr)
	}
	if _, err := s.Open(d, -1); errnoOf(err) != syscall.EMFILE {
		t.Fatalf("Open out of descriptors = %v, want EMFILE", err)
	}
}

// Quarantine moves a planted link itself (its target stays where it is)
// and refuses a quarantine/ that is a link.
func TestQuarantineMovesEntriesNeverTargets(t *testing.T) {
	s, root := newStore(t)
	outside, secretPath, secret := outsideDir(t)
	d := digest.FromString("planted")
	if err := os.Symlink(secretPath, filepath.Join(blobDir(root), d.Encoded())); err != nil {
		t.Fatal(err)
	}
	var planted Entry
	if err := s.walkBlobEntries(func(e Entry) error { planted = e; return nil }); err != nil {
		t.Fatal(err)
	}
	to, err := s.Quarantine(planted)
	if err != nil || to != "quarantine/"+d.Encoded() {
		t.Fatalf("Quarantine = %q, %v", to, err)
	}
	if fi, err := os.Lstat(filepath.Join(root, to)); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("quarantined entry is %v, %v; want the link itself", fi, err)
	}
	if left := names(t, blobDir(root)); len(left) != 0 {
		t.Fatalf("blobs/sha256 after Quarantine: %q", left)
	}
	assertOutsideUntouched(t, outside, secretPath, secret)
	for _, bad := range []Entry{{Path: "blobs/../x", Name: "x"}, {Path: "quarantine/x", Name: "x"}, {Path: "ingest/a", Name: "b"}} {
		if _, err := s.Quarantine(bad); !errors.Is(err, os.ErrInvalid) {
			t.Errorf("Quarantine(%+v) = %v, want os.ErrInvalid", bad, err)
		}
	}

	// quarantine/ swapped for a link: refused, nothing moved.
	if err := os.Rename(filepath.Join(root, "quarantine"), filepath.Join(root, "quarantine.old")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(root, "quarantine")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ingestDir(root), "stray"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Quarantine(Entry{Path: "ingest/stray", Name: "stray"}); !errors.Is(err, ErrUnsafe) {
		t.Fatalf("Quarantine into a linked quarantine/ = %v, want ErrUnsafe", err)
	}
	if left := names(t, ingestDir(root)); len(left) != 1 {
		t.Fatalf("ingest/ after a refused Quarantine: %q", left)
	}
	assertOutsideUntouched(t, outside, secretPath, secret)
}
