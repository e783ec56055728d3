package integration

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"
)

// These tests damage a store the way an unlucky administrator or an
// attacker with access to the store directory would, and check that
// nsfs never deletes a blob it cannot prove is garbage, never follows a
// link planted there, and never panics.

// storeWithImages mounts a new store, puts two images (sharing nothing)
// into two namespaces, and unmounts it. It returns the stopped daemon and
// the blob files, by name, with their bytes.
func storeWithImages(t *testing.T, seed int64) (*daemon, map[string][]byte) {
	t.Helper()
	d := startNsfs(t)
	a, b := newImage(seed, "amd64", 300, 200), newImage(seed+1, "arm64", 400)
	d.putImage(t, "default", "app:v1", a)
	mustRun(t, d.mnt, "mkdir", "ns/foo")
	d.putImage(t, "foo", "tool:v2", b)
	d.stop(t)
	return d, readBlobFiles(t, d.root)
}

// readBlobFiles reads every regular file of ROOT/blobs/sha256.
func readBlobFiles(t *testing.T, root string) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	for name := range rootBlobFiles(t, root) {
		p := filepath.Join(root, "blobs", "sha256", name)
		if fi, err := os.Lstat(p); err != nil || !fi.Mode().IsRegular() {
			continue
		}
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		files[name] = data
	}
	return files
}

// assertNoBlobLost checks that every blob file of want is still in the
// store with its bytes, in blobs/sha256 or, if a repair set it aside, in
// quarantine/.
func assertNoBlobLost(t *testing.T, root string, want map[string][]byte) {
	t.Helper()
	for name, data := range want {
		got, err := os.ReadFile(filepath.Join(root, "blobs", "sha256", name))
		if err != nil {
			got, err = os.ReadFile(filepath.Join(root, "quarantine", name))
		}
		if err != nil {
			t.Errorf("blob file %s was lost: %v", name, err)
		} else if string(got) != string(data) {
			t.Errorf("blob file %s has other bytes now", name)
		}
	}
}

// mountMustFail runs nsfs mount, which must refuse the store with a
// message containing each of wants, and must not mount.
func mountMustFail(t *testing.T, root, mnt string, wants ...string) string {
	t.Helper()
	requireMount(t)
	ctx, cancel := context.WithTimeout(context.Background(), toolTimeout)
	defer cancel()
	cmd := command(ctx, nsfsBin, "mount", "--root", root, mnt)
	suiteReaper.mount(mnt)
	out, err := combinedOutput(t, cmd)
	if mountedAt(t, mnt) > 0 {
		_, _ = runWithin(t, toolTimeout, "umount", "-l", mnt)
		t.Fatalf("nsfs mount of the damaged store %s mounted it", root)
	}
	if err == nil || cmd.ProcessState.ExitCode() != 1 {
		t.Fatalf("nsfs mount of the damaged store %s: %v, want exit 1\n%s", root, err, out)
	}
	for _, want := range wants {
		if !strings.Contains(string(out), want) {
			t.Errorf("nsfs mount's message lacks %q:\n%s", want, out)
		}
	}
	if n := strings.Count(strings.TrimSpace(string(out)), "\n"); n != 0 {
		t.Errorf("nsfs mount refused with %d lines, want one:\n%s", n+1, out)
	}
	assertNoPanic(t, "nsfs mount", string(out))
	return string(out)
}

func assertSame(t *testing.T, what, before, after string) {
	t.Helper()
	if before != after {
		t.Errorf("%s changed the store:\n%s", what, lineDiff(before, after))
	}
}

func assertNoPanic(t *testing.T, what, out string) {
	t.Helper()
	for _, bad := range []string{"\npanic: ", "goroutine ", "[signal ", "fatal error:"} {
		if strings.Contains(out, bad) {
			t.Fatalf("%s crashed (%q):\n%s", what, bad, out)
		}
	}
}

// A meta.db that is missing or empty beside blob files is refused, not
// made anew (which would make every blob file nobody's); nothing on disk
// changes. fsck --repair adopts every verified blob file into lost-found,
// from where it can be read through the mount.
func TestMissingOrEmptyMetaDBIsRefused(t *testing.T) {
	for _, damage := range []string{"missing", "empty"} {
		t.Run(damage, func(t *testing.T) {
			d, files := storeWithImages(t, 310)
			dbpath := filepath.Join(d.root, "meta.db")
			if damage == "missing" {
				if err := os.Remove(dbpath); err != nil {
					t.Fatal(err)
				}
			} else if err := os.Truncate(dbpath, 0); err != nil {
				t.Fatal(err)
			}
			before := d.diskState(t)
			mountMustFail(t, d.root, d.mnt, "store "+d.root+": meta.db is "+damage+", but blobs/sha256 holds "+fmt.Sprint(len(files))+" files",
				"nothing was changed", "nsfs fsck --repair --root "+d.root)
			assertSame(t, "a refused mount", before, d.diskState(t))
			if fi, err := os.Stat(dbpath); damage == "missing" && err == nil || damage == "empty" && (err != nil || fi.Size() != 0) {
				t.Fatalf("the refused mount changed meta.db: %v", err)
			}
			mustFail(t, "/", "meta.db is "+damage, nsfsBin, "gc", "--root", d.root)
			assertSame(t, "a refused gc", before, d.diskState(t))
			r := run(t, "/", nsfsBin, "fsck", "--root", d.root)
			if r.code != 1 || !strings.Contains(r.stdout+r.stderr, "meta.db is "+damage) {
				t.Errorf("fsck of a store without records: %s, want exit 1 naming meta.db", r)
			}
			assertNoPanic(t, "fsck", r.stdout+r.stderr)
			assertSame(t, "fsck without --repair", before, d.diskState(t))

			r = run(t, "/", nsfsBin, "fsck", "--root", d.root, "--repair")
			if r.code != 0 || !strings.Contains(r.stdout, `created namespace "lost-found"`) {
				t.Fatalf("fsck --repair: %s", r)
			}
			if got := strings.Count(r.stdout, `into namespace "lost-found"`); got != len(files) {
				t.Errorf("fsck --repair adopted %d blob files, want %d:\n%s", got, len(files), r.stdout)
			}
			assertNoBlobLost(t, d.root, files)
			mustFsckClean(t, d.root)
			d = startNsfs(t, withStore(d.root, d.mnt))
			var want []string
			for name := range files {
				want = append(want, name)
			}
			sort.Strings(want)
			assertOutput(t, "ls ns/lost-found/blobs/sha256", mustRun(t, d.mnt, "ls", "ns/lost-found/blobs/sha256"), lines(want...))
			for name, data := range files {
				assertOutput(t, "cat "+name, mustRun(t, d.mnt, "cat", blobPath("lost-found", name)), string(data))
			}
		})
	}
}

// A symlink where the store keeps a directory (ingest/, blobs/sha256) is
// never followed: the mount refuses, naming it, and the directory it
// points at is untouched.
func TestSymlinkedStoreDirectoryIsRefused(t *testing.T) {
	for _, dir := range []string{"ingest", "blobs/sha256"} {
		t.Run(strings.ReplaceAll(dir, "/", "-"), func(t *testing.T) {
			d, _ := storeWithImages(t, 320)
			outside := t.TempDir()
			victim := filepath.Join(outside, "precious")
			if err := os.WriteFile(victim, []byte("not nsfs's\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			p := filepath.Join(d.root, dir)
			if err := os.Rename(p, p+".moved"); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(outside, p); err != nil {
				t.Fatal(err)
			}
			mountMustFail(t, d.root, d.mnt, d.root, filepath.Base(dir), "symlink")
			if data, err := os.ReadFile(victim); err != nil || string(data) != "not nsfs's\n" {
				t.Fatalf("the directory the link points at was touched: %q, %v", data, err)
			}
			entries, _ := os.ReadDir(outside)
			if len(entries) != 1 {
				t.Errorf("the mount wrote into the linked directory: %v", entries)
			}
			r := run(t, "/", nsfsBin, "gc", "--root", d.root)
			if r.code == 0 {
				t.Errorf("gc of a store with a symlinked %s: %s, want a refusal", dir, r)
			}
			if _, err := os.Stat(victim); err != nil {
				t.Fatalf("gc removed a file outside the store: %v", err)
			}
		})
	}
}

// A symlink planted at blobs/sha256/<hex> (to a secret outside the store)
// is refused at mount, reported by fsck and moved aside by a repair,
// never read nor deleted.
func TestPlantedBlobSymlinkIsRefused(t *testing.T) {
	d, files := storeWithImages(t, 330)
	secret := filepath.Join(t.TempDir(), "shadow")
	if err := os.WriteFile(secret, []byte("root:secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var victim string
	for name := range files {
		victim = name
		break
	}
	p := filepath.Join(d.root, "blobs", "sha256", victim)
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(secret, p); err != nil {
		t.Fatal(err)
	}
	out := mountMustFail(t, d.root, d.mnt, "blobs/sha256/"+victim+": is a symlink where a blob file should be")
	if strings.Contains(out, "root:secret") {
		t.Fatal("the mount read the planted link's target")
	}
	r := run(t, "/", nsfsBin, "fsck", "--root", d.root, "--verify-blobs")
	if r.code != 1 || !strings.Contains(r.stdout, "blobs/sha256/"+victim+": is a symlink where a blob file should be (never followed)") || strings.Contains(r.stdout, "root:secret") {
		t.Errorf("fsck of a planted link: %s", r)
	}
	r = run(t, "/", nsfsBin, "fsck", "--root", d.root, "--repair")
	if r.code != 0 || !strings.Contains(r.stdout, "moved blobs/sha256/"+victim+" (a symlink) to quarantine/"+victim) {
		t.Errorf("fsck --repair of a planted link: %s", r)
	}
	if data, err := os.ReadFile(secret); err != nil || string(data) != "root:secret\n" {
		t.Fatalf("the link's target was touched: %q, %v", data, err)
	}
	if target, err := os.Readlink(filepath.Join(d.root, "quarantine", victim)); err != nil || target != secret {
		t.Errorf("quarantine/%s: %q, %v, want the link itself", victim, target, err)
	}
	delete(files, victim)
	assertNoBlobLost(t, d.root, files)
	mustFsckClean(t, d.root)
}

// A damaged meta.db — random bit flips, a zeroed page, a truncated file —
// never makes nsfs delete a blob file, and neither mount, fsck nor
// fsck --repair panics. After the repair, the store mounts.
func TestDamagedMetaDBNeverLosesABlob(t *testing.T) {
	type damage struct {
		name  string
		apply func(t *testing.T, path string, r *rand.Rand)
	}
	flip := func(t *testing.T, path string, r *rand.Rand) {
		data := readFile(t, path)
		for i := 0; i < 8; i++ {
			bit := r.IntN(len(data) * 8)
			data[bit/8] ^= 1 << (bit % 8)
		}
		writeStoreFile(t, path, data)
	}
	var cases []damage
	for i := 0; i < 12; i++ {
		cases = append(cases, damage{fmt.Sprintf("8-bit-flips-%d", i), flip})
	}
	for i := 0; i < 4; i++ {
		cases = append(cases, damage{fmt.Sprintf("zeroed-page-%d", i), func(t *testing.T, path string, r *rand.Rand) {
			data := readFile(t, path)
			pages := len(data) / 4096
			page := 2 + r.IntN(pages-2) // past the two meta pages, which bbolt checksums
			clear(data[page*4096 : (page+1)*4096])
			writeStoreFile(t, path, data)
		}})
	}
	// A sub-bucket's root page number pointed past the file: bbolt's
	// own check would fault on it in a goroutine no recover reaches.
	cases = append(cases, damage{"page-number-past-the-file", func(t *testing.T, path string, r *rand.Rand) {
		data := readFile(t, path)
		if !pointPastTheFile(data) {
			t.Fatal("no sub-bucket with a page of its own to damage")
		}
		writeStoreFile(t, path, data)
	}})
	for i := 0; i < 2; i++ {
		cases = append(cases, damage{fmt.Sprintf("truncated-%d", i), func(t *testing.T, path string, r *rand.Rand) {
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Truncate(path, 4096*(2+r.Int64N(fi.Size()/4096-2))); err != nil {
				t.Fatal(err)
			}
		}})
	}
	d, files := storeWithImages(t, 340)
	pristine := readFile(t, filepath.Join(d.root, "meta.db"))
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			writeStoreFile(t, filepath.Join(d.root, "meta.db"), pristine)
			os.RemoveAll(filepath.Join(d.root, "quarantine"))
			for name, data := range files {
				p := filepath.Join(d.root, "blobs", "sha256", name)
				if _, err := os.Stat(p); err != nil {
					writeStoreFile(t, p, data)
				}
			}
			c.apply(t, filepath.Join(d.root, "meta.db"), rand.New(rand.NewPCG(uint64(i), 77)))

			// The mount either serves the store or refuses it; no blob
			// file goes either way.
			ctx, cancel := context.WithTimeout(context.Background(), toolTimeout)
			defer cancel()
			cmd := command(ctx, nsfsBin, "mount", "--root", d.root, d.mnt)
			var out syncBuffer
			cmd.Stdout, cmd.Stderr = &out, &out
			exited := startBackground(t, cmd)
			deadline := time.Now().Add(readyTimeout)
			for mountedAt(t, d.mnt) == 0 && time.Now().Before(deadline) {
				select {
				case <-exited:
					deadline = time.Now()
				case <-time.After(10 * time.Millisecond):
				}
			}
			if mountedAt(t, d.mnt) > 0 {
				// Served: reading everything must not crash it.
				run(t, d.mnt, "ls", "-R", "ns")
				_ = cmd.Process.Signal(syscall.SIGTERM)
				<-exited
			} else {
				<-exited
			}
			assertNoPanic(t, "nsfs mount", out.String())
			if code := cmd.ProcessState.ExitCode(); code != 0 && code != 1 {
				t.Errorf("nsfs mount of a damaged meta.db exited %d:\n%s", code, out.String())
			}
			assertNoBlobLost(t, d.root, files)

			r := run(t, "/", nsfsBin, "fsck", "--root", d.root)
			assertNoPanic(t, "fsck", r.stdout+r.stderr)
			if r.code != 0 && r.code != 1 {
				t.Errorf("fsck: %s", r)
			}
			r = run(t, "/", nsfsBin, "fsck", "--root", d.root, "--repair")
			assertNoPanic(t, "fsck --repair", r.stdout+r.stderr)
			if r.code != 0 && r.code != 1 {
				t.Errorf("fsck --repair: %s", r)
			}
			assertNoBlobLost(t, d.root, files)
			// Repaired, the store mounts (what a human must still
			// settle, fsck lists, but it does not keep the mount away).
			dd := startNsfs(t, withStore(d.root, d.mnt))
			run(t, dd.mnt, "ls", "-R", "ns")
			dd.stop(t)
			assertNoBlobLost(t, d.root, files)
		})
	}
}

// A kill -9 of fsck --repair or of gc at any moment leaves a store that
// the next fsck --repair makes clean, with every blob file kept.
func TestKillDuringRepairAndGC(t *testing.T) {
	d, files := storeWithImages(t, 350)
	for i, delay := range []time.Duration{0, 2 * time.Millisecond, 5 * time.Millisecond, 10 * time.Millisecond, 20 * time.Millisecond, 50 * time.Millisecond} {
		for _, what := range []string{"repair", "gc"} {
			t.Run(fmt.Sprintf("%s-%v", what, delay), func(t *testing.T) {
				// A lost meta.db for the repair, crash garbage for gc.
				if what == "repair" {
					os.Remove(filepath.Join(d.root, "meta.db"))
				} else {
					plantCrashGarbage(t, d.root, int64(360+i), 50)
				}
				args := []string{"fsck", "--root", d.root, "--repair"}
				if what == "gc" {
					args = []string{"gc", "--root", d.root}
				}
				ctx, cancel := context.WithTimeout(context.Background(), toolTimeout)
				defer cancel()
				cmd := command(ctx, nsfsBin, args...)
				exited := startBackground(t, cmd)
				select {
				case <-exited:
				case <-time.After(delay):
					_ = cmd.Process.Kill()
					<-exited
				}
				r := run(t, "/", nsfsBin, "fsck", "--root", d.root, "--repair")
				if r.code != 0 {
					t.Fatalf("fsck --repair after a kill -9 of %s: %s", what, r)
				}
				mustFsckClean(t, d.root)
				assertNoBlobLost(t, d.root, files)
			})
		}
	}
}

// plantCrashGarbage leaves in an unmounted store what crashes between a
// publishing rename and its commit leave: n blob files with the intents
// their writers recorded, and an ingest file.
func plantCrashGarbage(t *testing.T, root string, seed int64, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		plantGarbage(t, root, seed*1000+int64(i))
	}
}

// pointPastTheFile sets the root page number of the first sub-bucket that
// has a page of its own to 1<<22, far past the end of the file. bbolt's
// layout: 4096-byte pages, each a 16-byte header (id, flags, count,
// overflow); a leaf page (flags 0x02) holds count elements of 16 bytes
// (flags, pos, ksize, vsize), an element with flag 0x01 being a bucket
// whose value starts with its root page number (0: inline).
func pointPastTheFile(data []byte) bool {
	const page = 4096
	for p := 2; (p+1)*page <= len(data); p++ {
		pg := data[p*page:]
		if binary.LittleEndian.Uint16(pg[8:]) != 0x02 {
			continue
		}
		count := int(binary.LittleEndian.Uint16(pg[10:]))
		for i := 0; i < count && 16+16*(i+1) <= page; i++ {
			el := 16 + 16*i
			flags, pos, ksize := binary.LittleEndian.Uint32(pg[el:]), binary.LittleEndian.Uint32(pg[el+4:]), binary.LittleEndian.Uint32(pg[el+8:])
			v := el + int(pos) + int(ksize)
			if flags&1 == 0 || v+8 > page || binary.LittleEndian.Uint64(pg[v:]) == 0 {
				continue
			}
			binary.LittleEndian.PutUint64(pg[v:], 1<<22)
			return true
		}
	}
	return false
}

func readFile(t *testing.T, p string) []byte {
	t.Helper()
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func writeStoreFile(t *testing.T, p string, data []byte) {
	t.Helper()
	os.Chmod(p, 0o644)
	if err := os.WriteFile(p, data, 0o444); err != nil {
		t.Fatal(err)
	}
}

// A symlink planted at <root>/reserve (the file of space kept for deletes
// on a full disk) is never written through: the mount refuses the store
// naming it, fsck --repair removes the link itself, and the store then
// mounts with a reserve of its own. The link's target never changes.
func TestPlantedReserveSymlinkIsRefused(t *testing.T) {
	d, files := storeWithImages(t, 370)
	victim := filepath.Join(t.TempDir(), "precious")
	writeStoreFile(t, victim, []byte("not nsfs's\n"))
	reserve := filepath.Join(d.root, "reserve")
	if err := os.Remove(reserve); err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	if err := os.Symlink(victim, reserve); err != nil {
		t.Fatal(err)
	}
	mountMustFail(t, d.root, d.mnt, "reserve: is a symlink where the store keeps a file of reserved space")
	r := run(t, "/", nsfsBin, "fsck", "--root", d.root, "--repair")
	if r.code != 0 || !strings.Contains(r.stdout, "removed reserve, a symlink") {
		t.Errorf("fsck --repair of a planted reserve link: %s", r)
	}
	if data := readFile(t, victim); string(data) != "not nsfs's\n" {
		t.Fatalf("the link's target was written: %d bytes", len(data))
	}
	d = startNsfs(t, withStore(d.root, d.mnt))
	d.stop(t)
	if fi, err := os.Lstat(reserve); err != nil || !fi.Mode().IsRegular() {
		t.Errorf("the reserve after the repair: %v, %v", fi, err)
	}
	if data := readFile(t, victim); string(data) != "not nsfs's\n" {
		t.Fatalf("the link's target was written: %d bytes", len(data))
	}
	assertNoBlobLost(t, d.root, files)
}

// A link planted at <root>/quarantine (where a repair moves what it must
// not delete) makes fsck --repair refuse before it changes anything; its
// target is never written.
func TestPlantedQuarantineLinkStopsTheRepairFirst(t *testing.T) {
	d, files := storeWithImages(t, 380)
	var victim string
	for name := range files {
		victim = name
		break
	}
	// Something the repair would change: a blob file gone, so its images go.
	if err := os.Remove(filepath.Join(d.root, "blobs", "sha256", victim)); err != nil {
		t.Fatal(err)
	}
	elsewhere := t.TempDir()
	if err := os.Symlink(elsewhere, filepath.Join(d.root, "quarantine")); err != nil {
		t.Fatal(err)
	}
	dbBefore := readFile(t, filepath.Join(d.root, "meta.db"))
	before := d.diskState(t)
	r := run(t, "/", nsfsBin, "fsck", "--root", d.root, "--repair")
	if r.code != 1 || !strings.Contains(r.stderr, "quarantine is a symlink, not a directory") || !strings.Contains(r.stderr, "mkdir "+filepath.Join(d.root, "quarantine")) {
		t.Errorf("fsck --repair with a planted quarantine link: %s", r)
	}
	if string(readFile(t, filepath.Join(d.root, "meta.db"))) != string(dbBefore) {
		t.Error("the refused repair changed meta.db")
	}
	assertSame(t, "a refused repair", before, d.diskState(t))
	if entries, _ := os.ReadDir(elsewhere); len(entries) != 0 {
		t.Errorf("the repair wrote through the link: %v", entries)
	}
}
