package integration

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// gcEvery is the --gc-grace of the tests: short, so that garbage goes
// within a test, and long enough for a writer to write again in time.
const gcEvery = 200 * time.Millisecond

// plantGarbage puts in an unmounted root what a crash leaves: an ingest
// file nobody writes, and a blob file published by a writer whose commit
// never happened, with the intent the writer recorded before publishing
// (v1/unheld/<digest>). It returns their paths relative to the root.
func plantGarbage(t *testing.T, root string, seed int64) (ingest, blobFile string) {
	t.Helper()
	orphan := randomBytes(seed, 1000)
	ingest = filepath.Join("ingest", sha256Hex(orphan)+"-12345")
	blobFile = filepath.Join("blobs", "sha256", sha256Hex(orphan))
	for _, rel := range []string{ingest, blobFile} {
		if err := os.WriteFile(filepath.Join(root, rel), orphan, 0o444); err != nil {
			t.Fatal(err)
		}
	}
	recordIntent(t, root, "sha256:"+sha256Hex(orphan))
	return ingest, blobFile
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

// The daemon removes an abandoned ingest once it is older than
// --gc-grace, in the background, while an ingest that is being written
// slowly, every gcEvery/4, survives many collections and commits. A blob
// file no record names (planted by hand, say) is never collected: nothing
// proves it is garbage.
func TestGCDaemonCollectsGarbage(t *testing.T) {
	d := startNsfs(t, withFlags("--gc-grace", gcEvery.String()))
	abandoned := randomBytes(41, 1000)
	ingest := filepath.Join("ingest", sha256Hex(abandoned)+"-12345")
	stray := randomBytes(47, 500)
	strayFile := filepath.Join("blobs", "sha256", sha256Hex(stray))
	for rel, data := range map[string][]byte{ingest: abandoned, strayFile: stray} {
		if err := os.WriteFile(filepath.Join(d.root, rel), data, 0o444); err != nil {
			t.Fatal(err)
		}
	}

	slow := blob{data: randomBytes(42, 64*1024)}
	f, err := os.OpenFile(d.path(blobPath("default", slow.hex())), os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_CLOEXEC, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	const chunk = 1024
	written := 0
	writeChunk := func() {
		t.Helper()
		if _, err := f.Write(slow.data[written : written+chunk]); err != nil {
			t.Fatalf("the slow ingest, at %d bytes: %v", written, err)
		}
		written += chunk
	}
	writeChunk()
	start := time.Now()
	deadline := start.Add(10 * time.Second)
	// Write on until the garbage is gone and several graces have passed.
	for exists(filepath.Join(d.root, ingest)) || time.Since(start) < 4*gcEvery {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: ingest %s still there", time.Since(start), ingest)
		}
		time.Sleep(gcEvery / 4)
		writeChunk()
	}
	for written < len(slow.data) {
		writeChunk()
	}
	if err := f.Close(); err != nil {
		t.Fatalf("close of the slow ingest: %v", err)
	}
	assertOutput(t, "ls blobs/sha256", mustRun(t, d.mnt, "ls", "ns/default/blobs/sha256"), lines(slow.hex()))
	assertOutput(t, "sha256sum", mustRun(t, d.mnt, "sha256sum", blobPath("default", slow.hex())), slow.hex()+"  "+blobPath("default", slow.hex())+"\n")
	d.waitForLog(t, "gc: removed "+ingest+" (1000 bytes, last written ")
	if left := ingestFiles(t, d.root); len(left) != 0 {
		t.Errorf("ingest files left: %v", left)
	}
	if !exists(filepath.Join(d.root, strayFile)) {
		t.Fatalf("gc removed %s, which no record names", strayFile)
	}
	if strings.Contains(d.logs.String(), strayFile) {
		t.Errorf("gc logged the unrecorded %s:\n%s", strayFile, d.logs)
	}
	// Taken away again, the store is clean.
	if err := os.Remove(filepath.Join(d.root, strayFile)); err != nil {
		t.Fatal(err)
	}
	d.stop(t)
	mustFsckClean(t, d.root)
}

// With the default grace (1 h), garbage younger than that stays while
// mounted; a clean unmount removes the ingests, and the next mount,
// which holds the lock, removes what a crash left.
func TestGCDefaultGraceKeepsYoungGarbage(t *testing.T) {
	d := startNsfs(t)
	abandoned := filepath.Join(d.root, "ingest", "abandoned-1")
	if err := os.WriteFile(abandoned, []byte("abandoned"), 0o444); err != nil {
		t.Fatal(err)
	}
	mustRun(t, d.mnt, "mkdir", "ns/foo") // some requests later
	if !exists(abandoned) {
		t.Fatal("a young ingest was collected under the default grace")
	}
	d.stop(t)
	if exists(abandoned) {
		t.Fatal("a clean unmount left an ingest")
	}
	ingest, orphanFile := plantGarbage(t, d.root, 43)
	d = startNsfs(t, withStore(d.root, d.mnt))
	d.waitForLog(t, "removed what a crash left in "+d.root+": 1 blob files no namespace holds, 1 unfinished ingests")
	if exists(filepath.Join(d.root, ingest)) || exists(filepath.Join(d.root, orphanFile)) {
		t.Fatal("the mount left garbage in place")
	}
}

// nsfs gc collects an unmounted store and prints what it removed; it
// refuses a mounted one.
func TestGCCommand(t *testing.T) {
	d := startNsfs(t)
	img := newImage(44, "amd64", 100)
	d.putImage(t, "default", "app:v1", img)
	mustFail(t, "/", "store "+d.root+" is already in use by another nsfs", nsfsBin, "gc", "--root", d.root)
	d.stop(t)
	before := d.diskState(t)

	ingest, orphanFile := plantGarbage(t, d.root, 45)
	old := time.Now().Add(-2 * time.Hour).Truncate(time.Second)
	if err := os.Chtimes(filepath.Join(d.root, orphanFile), old, old); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(d.root, ingest))
	if err != nil {
		t.Fatal(err)
	}
	young := fi.ModTime().UTC().Format(time.RFC3339)

	// --grace 1h: only the old blob file goes.
	out := mustRun(t, "/", nsfsBin, "gc", "--root", d.root, "--grace", "1h")
	assertOutput(t, "nsfs gc --grace 1h", out, lines(
		fmt.Sprintf("removed %s (1000 bytes, last written %s): no namespace holds it", orphanFile, old.UTC().Format(time.RFC3339)),
		fmt.Sprintf("removed 1 file (1000 bytes) from %s", d.root)))
	out = mustRun(t, "/", nsfsBin, "gc", "--root", d.root)
	assertOutput(t, "nsfs gc", out, lines(
		fmt.Sprintf("removed %s (1000 bytes, last written %s): an unfinished ingest", ingest, young),
		fmt.Sprintf("removed 1 file (1000 bytes) from %s", d.root)))
	assertOutput(t, "nsfs gc of a clean store", mustRun(t, "/", nsfsBin, "gc", "--root", d.root), lines("no garbage in "+d.root))
	if after := d.diskState(t); after != before {
		t.Errorf("gc changed what is not garbage:\n%s", lineDiff(before, after))
	}
	mustFsckClean(t, d.root)
	mustFail(t, "/", "no nsfs store at "+filepath.Join(d.root, "nothing"), nsfsBin, "gc", "--root", filepath.Join(d.root, "nothing"))
	if exists(filepath.Join(d.root, "nothing")) {
		t.Error("gc of a missing store created it")
	}
}

// mustFsckClean runs nsfs fsck on an unmounted store, which must be clean.
func mustFsckClean(t *testing.T, root string) {
	t.Helper()
	out := mustRun(t, "/", nsfsBin, "fsck", "--root", root, "--verify-blobs")
	if !strings.HasPrefix(out, "store "+root+" is clean: ") || strings.Count(out, "\n") != 1 {
		t.Errorf("nsfs fsck --root %s: %q, want one line saying it is clean", root, out)
	}
}

// recordIntent writes, into an unmounted store's meta.db, the intent a
// writer records before it publishes blob d (v1/unheld/<d>).
func recordIntent(t *testing.T, root, d string) {
	t.Helper()
	db, err := bolt.Open(filepath.Join(root, "meta.db"), 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(func(tx *bolt.Tx) error {
		stamp := make([]byte, 8)
		binary.BigEndian.PutUint64(stamp, uint64(time.Now().UnixNano()))
		return tx.Bucket([]byte("v1")).Bucket([]byte("unheld")).Put([]byte(d), stamp)
	}); err != nil {
		t.Fatal(err)
	}
}
