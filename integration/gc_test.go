package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// gcEvery is the --gc-grace of the tests: short, so that garbage goes
// within a test, and long enough for a writer to write again in time.
const gcEvery = 200 * time.Millisecond

// plantGarbage puts in root what a crash leaves: an ingest file nobody
// writes and a blob file no record names. It returns their paths relative
// to the root.
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
	return ingest, blobFile
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

// The daemon removes an abandoned ingest and a blob file no namespace
// holds once they are older than --gc-grace, in the background, while an
// ingest that is being written slowly, every gcEvery/4, survives many
// collections and commits.
func TestGCDaemonCollectsGarbage(t *testing.T) {
	d := startNsfs(t, withFlags("--gc-grace", gcEvery.String()))
	ingest, orphanFile := plantGarbage(t, d.root, 41)

	slow := blob{data: randomBytes(42, 64*1024)}
	f, err := os.OpenFile(d.path(blobPath("default", slow.hex())), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
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
	for exists(filepath.Join(d.root, ingest)) || exists(filepath.Join(d.root, orphanFile)) || time.Since(start) < 4*gcEvery {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: ingest %s there: %v, orphan %s there: %v", time.Since(start),
				ingest, exists(filepath.Join(d.root, ingest)), orphanFile, exists(filepath.Join(d.root, orphanFile)))
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
	d.waitForLog(t, "gc: removed "+orphanFile+" (1000 bytes, last written ")
	if left := ingestFiles(t, d.root); len(left) != 0 {
		t.Errorf("ingest files left: %v", left)
	}
	d.stop(t)
	mustFsckClean(t, d.root)
}

// With the default grace (1 h), garbage younger than that stays while
// mounted; the next mount, which holds the lock, removes it all.
func TestGCDefaultGraceKeepsYoungGarbage(t *testing.T) {
	d := startNsfs(t)
	ingest, orphanFile := plantGarbage(t, d.root, 43)
	mustRun(t, d.mnt, "mkdir", "ns/foo") // some requests later
	if !exists(filepath.Join(d.root, ingest)) || !exists(filepath.Join(d.root, orphanFile)) {
		t.Fatal("young garbage was collected under the default grace")
	}
	d = d.remount(t)
	d.waitForLog(t, "removed what a crash left in "+d.root+": 1 unrecorded blob files, 1 unfinished ingests")
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
