package integration

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// A tool that writes a blob under a name of its own in blobs/sha256 and
// renames it to the digest (rsync's .<hex>.XXXXXX, skopeo's
// oci-put-blob123, crane's <hex><random>): the temporary file is listed
// while it is there, carries labels, and the rename commits it verified,
// with those labels.
func TestTempIngestRenameCommits(t *testing.T) {
	t.Parallel()
	d := startNsfs(t)
	m := d.mnt
	b := blob{data: randomBytes(1201, 200<<10)}
	for i, temp := range []string{"." + b.hex() + ".Xa81Zq", "oci-put-blob123", b.hex() + "4711"} {
		tp := blobPath("default", temp)
		mustRun(t, m, "cp", writeTemp(t, "b", b.data), tp)
		listing := []string{temp}
		if i > 0 {
			listing = sortStrings([]string{temp, b.hex()})
		}
		assertOutput(t, "ls -A during the ingest", mustRun(t, m, "ls", "-A", blobPath("default", "")), lines(listing...))
		assertOutput(t, "stat of the temporary file", mustRun(t, m, "stat", "-c", "%s %F", tp), "204800 regular file\n")
		mustRun(t, m, "setfattr", "-n", "user.origin", "-v", "restore", tp)
		assertOutput(t, "getfattr of the temporary file", mustRun(t, m, "getfattr", "--only-values", "-n", "user.origin", tp), "restore")
		if got := ingestFiles(t, d.root); len(got) != 1 {
			t.Errorf("ROOT/ingest = %v while the temporary file is there, want one file", got)
		}
		mustRun(t, m, "mv", tp, blobPath("default", b.hex()))
		assertOutput(t, "ls -A after the rename", mustRun(t, m, "ls", "-A", blobPath("default", "")), lines(b.hex()))
		assertOutput(t, "sha256sum of the blob", mustRun(t, m, "sha256sum", blobPath("default", b.hex())), b.hex()+"  "+blobPath("default", b.hex())+"\n")
		mustFail(t, m, "No such file or directory", "stat", tp)
		assertOutput(t, "the label set on the temporary file", mustRun(t, m, "getfattr", "--only-values", "-n", "user.origin", blobPath("default", b.hex())), "restore")
		if got := ingestFiles(t, d.root); len(got) != 0 {
			t.Errorf("ROOT/ingest = %v after the rename", got)
		}
		if _, ok := rootBlobFiles(t, d.root)[b.hex()]; !ok {
			t.Errorf("ROOT/blobs/sha256/%s missing after the rename", b.hex())
		}
		if i == 0 {
			// The second and third time the namespace holds the blob:
			// the rename writes it again with its own bytes, which
			// changes nothing.
			mustRun(t, m, "setfattr", "-x", "user.origin", blobPath("default", b.hex()))
			mustRun(t, m, "setfattr", "-n", "user.origin", "-v", "restore", blobPath("default", b.hex()))
		}
	}
	before := d.state(t)
	tp := blobPath("default", "tmp")
	mustRun(t, m, "cp", writeTemp(t, "b", b.data), tp)
	mustRun(t, m, "mv", tp, blobPath("default", b.hex()))
	d.assertUnchanged(t, "a held blob written again through a temporary file", before)
}

// A temporary file whose bytes are not the blob it is renamed to: EBADMSG,
// and the failed rename changes nothing: the temporary file stays, no blob
// is made, and rm removes it with its bytes.
func TestTempIngestRenameToTheWrongDigest(t *testing.T) {
	t.Parallel()
	d := startNsfs(t)
	m := d.mnt
	b := blob{data: randomBytes(1202, 10<<10)}
	other := blob{data: randomBytes(1203, 10<<10)}
	d.putBlob(t, "default", other)
	before := d.state(t)
	tp := blobPath("default", ".tmp")
	mustRun(t, m, "cp", writeTemp(t, "b", b.data), tp)
	mustFail(t, m, "Bad message", "mv", tp, blobPath("default", strings.Repeat("0", 64)))
	assertOutput(t, "ls -A after the failed rename", mustRun(t, m, "ls", "-A", blobPath("default", "")), lines(".tmp", other.hex()))
	// Over a blob the namespace holds: it stays as it was.
	mustFail(t, m, "Bad message", "mv", tp, blobPath("default", other.hex()))
	assertOutput(t, "sha256sum of the blob a rename failed to replace", mustRun(t, m, "sha256sum", blobPath("default", other.hex())), other.hex()+"  "+blobPath("default", other.hex())+"\n")
	mustRun(t, m, "rm", tp)
	d.assertUnchanged(t, "temporary files renamed to the wrong digest, then removed", before)

	// Renamed to another name that is no digest, it stays a temporary
	// file; rm removes it and its bytes.
	mustRun(t, m, "cp", writeTemp(t, "b", b.data), tp)
	mustRun(t, m, "mv", tp, blobPath("default", "tmp2"))
	assertOutput(t, "ls -A", mustRun(t, m, "ls", "-A", blobPath("default", "")), lines(other.hex(), "tmp2"))
	mustRun(t, m, "rm", blobPath("default", "tmp2"))
	d.assertUnchanged(t, "a temporary file renamed, then removed", before)

	// From a program: rename(2) answers EBADMSG, RENAME_NOREPLACE over a
	// blob the namespace can see EEXIST.
	mustRun(t, m, "cp", writeTemp(t, "b", other.data), tp)
	err := unix.Renameat2(unix.AT_FDCWD, d.path(tp), unix.AT_FDCWD, d.path(blobPath("default", other.hex())), unix.RENAME_NOREPLACE)
	assertErrno(t, "rename with RENAME_NOREPLACE over a blob the namespace holds", err, syscall.EEXIST)
	err = os.Rename(d.path(tp), d.path(blobPath("default", b.hex())))
	assertErrno(t, "rename(2) of another blob's bytes", err, syscall.EBADMSG)
	mustRun(t, m, "rm", tp)
	d.assertUnchanged(t, "refused renames", before)
}

// rsync writes every file to a temporary name and renames it: copying
// blobs into blobs/sha256 with rsync -aX works, labels included.
func TestTempIngestRsync(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat("/usr/bin/rsync"); err != nil && os.Getenv("CI") == "" {
		t.Skip("rsync is not installed")
	}
	d := startNsfs(t)
	m := d.mnt
	src := t.TempDir()
	var hexes []string
	for i := range 3 {
		b := blob{data: randomBytes(int64(1210+i), 50<<10*(i+1))}
		hexes = append(hexes, b.hex())
		if err := os.WriteFile(filepath.Join(src, b.hex()), b.data, 0o444); err != nil {
			t.Fatal(err)
		}
	}
	mustRun(t, src, "setfattr", "-n", "user.note", "-v", "first", hexes[0])
	mustRun(t, m, "rsync", "-aX", src+"/", blobPath("default", "")+"/")
	assertOutput(t, "ls after rsync", mustRun(t, m, "ls", "-A", blobPath("default", "")), lines(sortStrings(hexes)...))
	for _, h := range hexes {
		assertOutput(t, "sha256sum "+h, mustRun(t, m, "sha256sum", blobPath("default", h)), h+"  "+blobPath("default", h)+"\n")
	}
	assertOutput(t, "the label rsync -X copied", mustRun(t, m, "getfattr", "--only-values", "-n", "user.note", blobPath("default", hexes[0])), "first")
	if got := ingestFiles(t, d.root); len(got) != 0 {
		t.Errorf("ROOT/ingest = %v after rsync", got)
	}
}

// A temporary file left behind keeps no rmdir from succeeding, and the
// daemon's gc collects it after its grace period: the name goes with its
// bytes.
func TestTempIngestLeftBehind(t *testing.T) {
	t.Parallel()
	d := startNsfs(t, withFlags("--gc-grace", gcEvery.String()))
	m := d.mnt
	mustRun(t, m, "mkdir", "ns/foo")
	data := randomBytes(1220, 4096)
	mustRun(t, m, "cp", writeTemp(t, "b", data), blobPath("foo", "oci-put-blob1"))
	mustRun(t, m, "cp", writeTemp(t, "b", data), blobPath("default", "oci-put-blob2"))
	assertOutput(t, "ls", mustRun(t, m, "ls", blobPath("foo", "")), lines("oci-put-blob1"))
	mustRun(t, m, "rmdir", "ns/foo")
	mustRun(t, m, "rm", "-rf", "ns/default")
	assertOutput(t, "ls ns after rm -rf", mustRun(t, m, "ls", "ns"), "")

	mustRun(t, m, "mkdir", "ns/bar")
	mustRun(t, m, "cp", writeTemp(t, "b", data), blobPath("bar", "left"))
	deadline := time.Now().Add(10 * time.Second)
	for len(ingestFiles(t, d.root)) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("ROOT/ingest still holds %v", ingestFiles(t, d.root))
		}
		time.Sleep(gcEvery / 4)
	}
	assertOutput(t, "ls once gc collected the temporary file", mustRun(t, m, "ls", "-A", blobPath("bar", "")), "")
	mustFail(t, m, "No such file or directory", "stat", blobPath("bar", "left"))
}

// The temporary files of a namespace go with it (the daemon would
// otherwise hold their descriptors until gc collects them, an hour later
// by default).
func TestTempIngestGoesWithItsNamespace(t *testing.T) {
	t.Parallel()
	d := startNsfs(t)
	m := d.mnt
	mustRun(t, m, "mkdir", "ns/foo")
	data := randomBytes(1230, 4096)
	mustRun(t, m, "cp", writeTemp(t, "b", data), blobPath("foo", "crane-tmp"))
	mustRun(t, m, "cp", writeTemp(t, "b", data), blobPath("default", "crane-tmp"))
	if got := ingestFiles(t, d.root); len(got) != 2 {
		t.Fatalf("ROOT/ingest = %v, want the two temporary files", got)
	}
	mustRun(t, m, "rmdir", "ns/foo")
	if got := ingestFiles(t, d.root); len(got) != 1 {
		t.Errorf("ROOT/ingest = %v after rmdir ns/foo, want default's temporary file only", got)
	}
	mustRun(t, m, "mkdir", "ns/foo")
	assertOutput(t, "ls -A of the namespace made again", mustRun(t, m, "ls", "-A", blobPath("foo", "")), "")
	assertOutput(t, "ls -A of default", mustRun(t, m, "ls", "-A", blobPath("default", "")), lines("crane-tmp"))
}

// A clean unmount removes the ingests the mount had (a temporary file
// never renamed, a scratch file): nothing can write them once it stopped
// serving, and nsfs fsck then finds the store clean. What a kill -9
// leaves is a note of nsfs fsck, no problem (exit 0), until the next
// mount (or nsfs gc) removes it.
func TestCleanUnmountRemovesIngests(t *testing.T) {
	t.Parallel()
	d := startNsfs(t)
	m := d.mnt
	mustRun(t, m, "mkdir", "ns/t")
	mustSh(t, m, "echo upload >"+blobPath("default", "upload.tmp")+" && echo scratch >ns/t/scratchfile")
	if got := ingestFiles(t, d.root); len(got) != 2 {
		t.Fatalf("ROOT/ingest = %v, want the temporary file and the scratch file", got)
	}
	d.stop(t)
	if got := ingestFiles(t, d.root); len(got) != 0 {
		t.Errorf("ROOT/ingest = %v after a clean unmount, want it empty", got)
	}
	d.waitForLog(t, "removed 2 unfinished ingests the mount had (15 bytes: ")
	mustFsckClean(t, d.root)

	d = startNsfs(t, withStore(d.root, d.mnt), after(d))
	assertOutput(t, "ls -A ns/t", mustRun(t, d.mnt, "ls", "-A", "ns/t"), lines("blobs", "images", "index.json", "oci-layout"))
	mustSh(t, d.mnt, "echo upload >"+blobPath("default", "upload.tmp"))
	d.kill9(t)
	left := ingestFiles(t, d.root)
	if len(left) != 1 {
		t.Fatalf("ROOT/ingest = %v after kill -9, want the temporary file", left)
	}
	out, code := runFsck(t, d.root)
	if code != 0 || !strings.Contains(out, "note: ingest/"+left[0]+": unfinished ingest (7 bytes, last written ") ||
		!strings.Contains(out, "): no damage; nsfs gc or the next mount removes it\n") ||
		!strings.HasSuffix(out, "\nstore "+d.root+" is clean: 2 namespaces, 0 images, 0 blobs, 0 blob files\n") {
		t.Errorf("nsfs fsck of what kill -9 left: exit %d\n%s\nwant exit 0, a note of the ingest, clean", code, out)
	}
	d = d.restart(t)
	d.waitForLog(t, "removed what a crash left in "+d.root+": 0 blob files no namespace holds, 1 unfinished ingests")
	if got := ingestFiles(t, d.root); len(got) != 0 {
		t.Errorf("ROOT/ingest = %v once the next mount served", got)
	}
}
