package metadata

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nsfs/nsfs/blobs"
	"github.com/opencontainers/go-digest"
	bolt "go.etcd.io/bbolt"
)

// fsckStore is a store with an image "app:v1" in default and a copy of it
// in foo, plus a blob default wrote and no image references.
type fsckStore struct {
	db    *DB
	img   seededImage
	extra digest.Digest
}

func newFsckStore(t *testing.T) fsckStore {
	t.Helper()
	db := openTestDB(t, Options{})
	img := seedImage(t, db, "default", "app")
	for _, ns := range []string{"default", "foo"} {
		if ns != "default" {
			if _, err := db.Namespaces().Create(ns, map[string]string{"team": "a"}); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := db.Images().Put(ImageWrite{Namespace: ns, Ref: "app:v1", Manifest: img.manifest}); err != nil {
			t.Fatal(err)
		}
	}
	extra := mustWriteBlob(t, db, "default", []byte("written, never referenced")).Digest
	if err := db.Labels().Set(Object{Namespace: "default", Image: "app:v1"}, "k", "v", nil); err != nil {
		t.Fatal(err)
	}
	return fsckStore{db: db, img: img, extra: extra}
}

// imageRemoved are the repairs of a store whose image app:v1 (in default
// and foo) needs blob bad, which is why (missing, corrupt ...): the
// images go, and with them every blob only they held; bad's records go.
func (s fsckStore) imageRemoved(bad digest.Digest, removal, why string) []string {
	var lines []string
	for _, ns := range []string{"default", "foo"} {
		lines = append(lines, fmt.Sprintf(`removed image "app:v1" of namespace %q: %s`, ns, removal))
		for _, d := range []digest.Digest{s.img.digest, s.img.config.Digest, s.img.layer.Digest} {
			if d == bad {
				lines = append(lines, fmt.Sprintf(`namespace %q dropped blob %s: its file %s`, ns, d, why))
			} else {
				lines = append(lines, fmt.Sprintf(`namespace %q dropped blob %s: only removed images claimed it`, ns, d))
			}
		}
	}
	sizes := map[digest.Digest]int{s.img.digest: len(s.img.manifest), s.img.config.Digest: int(s.img.config.Size), s.img.layer.Digest: int(s.img.layer.Size)}
	for _, d := range []digest.Digest{s.img.digest, s.img.config.Digest, s.img.layer.Digest} {
		if d == bad {
			lines = append(lines, fmt.Sprintf(`removed the record of blob %s: its file %s %s`, d, blobs.RelPath(d), why))
		} else {
			// Their bytes verify: kept, never deleted.
			lines = append(lines, fmt.Sprintf(`removed the record of blob %s: no namespace holds it`, d),
				fmt.Sprintf(`adopted blob file %s (%d bytes, its digest verified) into namespace "lost-found"`, blobs.RelPath(d), sizes[d]))
		}
	}
	return append(lines, `created namespace "lost-found" for blob files no record names`)
}

func problemLines(ps []Problem) string {
	var lines []string
	for _, p := range ps {
		lines = append(lines, p.String())
	}
	return strings.Join(lines, "\n")
}

func mustCheck(t *testing.T, db *DB, opts CheckOptions) Report {
	t.Helper()
	rep, err := db.Check(opts)
	if err != nil {
		t.Fatalf("Check(%+v): %v", opts, err)
	}
	return rep
}

func wantLines(t *testing.T, what, got string, want ...string) {
	t.Helper()
	if w := strings.Join(want, "\n"); got != w {
		t.Fatalf("%s:\n%s\nwant:\n%s", what, got, w)
	}
}

// wantSameLines is wantLines in any order.
func wantSameLines(t *testing.T, what, got string, want ...string) {
	t.Helper()
	if w := sortLines(strings.Join(want, "\n")); sortLines(got) != w {
		t.Fatalf("%s:\n%s\nwant:\n%s", what, got, w)
	}
}

func TestCheckCleanStore(t *testing.T) {
	s := newFsckStore(t)
	rep := mustCheck(t, s.db, CheckOptions{VerifyBlobs: true})
	if !rep.Clean() || len(rep.Problems) != 0 {
		t.Fatalf("a fresh store has problems:\n%s", problemLines(rep.Problems))
	}
	if rep.Namespaces != 2 || rep.Images != 2 || rep.Blobs != 4 || rep.Files != 4 {
		t.Fatalf("counted %d namespaces, %d images, %d blobs, %d files; want 2, 2, 4, 4", rep.Namespaces, rep.Images, rep.Blobs, rep.Files)
	}
	// A repair of a clean store does nothing.
	before := dump(t, s.db)
	rep = mustCheck(t, s.db, CheckOptions{Repair: true})
	if len(rep.Repairs) != 0 || !rep.Clean() || dump(t, s.db) != before {
		t.Fatalf("repair of a clean store did %q", rep.Repairs)
	}
}

// Each case breaks the store as a crash, a disk or a hand would, then
// checks the report, the repair's actions, and that the store is clean and
// consistent after the repair.
func TestCheckAndRepair(t *testing.T) {
	type expect struct {
		problems []string // in the order Check reports them
		notes    []string // an ingest's line up to its time
		repairs  []string
		images   int // left after the repair
	}
	cases := []struct {
		name   string
		verify bool
		breakf func(t *testing.T, s fsckStore) expect
	}{{
		name: "layer file deleted",
		breakf: func(t *testing.T, s fsckStore) expect {
			l := s.img.layer.Digest
			removeFile(t, blobPath(s.db, l))
			return expect{
				problems: []string{
					fmt.Sprintf(`namespace "default": image "app:v1": blob %s it claims is missing (its file %s is gone)`, l, blobs.RelPath(l)),
					fmt.Sprintf(`namespace "foo": image "app:v1": blob %s it claims is missing (its file %s is gone)`, l, blobs.RelPath(l)),
					fmt.Sprintf(`blob %s: its file %s is missing`, l, blobs.RelPath(l)),
				},
				repairs: s.imageRemoved(l, fmt.Sprintf("blob %s it claims is missing", l), "is missing"),
			}
		},
	}, {
		name: "manifest file deleted",
		breakf: func(t *testing.T, s fsckStore) expect {
			m := s.img.digest
			removeFile(t, blobPath(s.db, m))
			return expect{
				problems: []string{
					fmt.Sprintf(`namespace "default": image "app:v1": target blob %s is missing (its file %s is gone)`, m, blobs.RelPath(m)),
					fmt.Sprintf(`namespace "foo": image "app:v1": target blob %s is missing (its file %s is gone)`, m, blobs.RelPath(m)),
					fmt.Sprintf(`blob %s: its file %s is missing`, m, blobs.RelPath(m)),
				},
				repairs: s.imageRemoved(m, fmt.Sprintf("its target blob %s is missing", m), "is missing"),
			}
		},
	}, {
		name: "unrecorded blob file and ingest leftover",
		breakf: func(t *testing.T, s fsckStore) expect {
			orphan := digest.FromString("orphan")
			if _, err := s.db.blobs.WriteBytes(orphan, []byte("orphan")); err != nil {
				t.Fatal(err)
			}
			w, err := s.db.blobs.NewWriter(digest.FromString("never finished"))
			if err != nil {
				t.Fatal(err)
			}
			w.Write([]byte("never"))
			name := ingestNames(t, s.db)[0]
			return expect{
				problems: []string{
					fmt.Sprintf(`blob file %s: no record names it (6 bytes; its record is lost, or it was put there by hand)`, blobs.RelPath(orphan)),
				},
				notes: []string{fmt.Sprintf(`ingest/%s: unfinished ingest (5 bytes, last written `, name)},
				// Never deleted: it may be someone's data.
				repairs: []string{
					`created namespace "lost-found" for blob files no record names`,
					fmt.Sprintf(`adopted blob file %s (6 bytes, its digest verified) into namespace "lost-found"`, blobs.RelPath(orphan)),
					fmt.Sprintf(`removed unfinished ingest ingest/%s (5 bytes)`, name),
				},
				images: 2,
			}
		},
	}, {
		name:   "a byte of a layer flipped",
		verify: true,
		breakf: func(t *testing.T, s fsckStore) expect {
			l := s.img.layer.Digest
			path := blobPath(s.db, l)
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			data[0] ^= 1
			overwrite(t, path, data)
			// Without --verify-blobs the size still matches: clean.
			if rep := mustCheck(t, s.db, CheckOptions{}); len(rep.Problems) != 0 {
				t.Fatalf("a flipped byte is found without hashing:\n%s", problemLines(rep.Problems))
			}
			got := digest.FromBytes(data)
			why := "its bytes hash to " + string(got)
			return expect{
				problems: []string{
					fmt.Sprintf(`blob file %s: %s (corrupt)`, blobs.RelPath(l), why),
					fmt.Sprintf(`namespace "default": image "app:v1": blob %s it claims is corrupt (%s)`, l, why),
					fmt.Sprintf(`namespace "foo": image "app:v1": blob %s it claims is corrupt (%s)`, l, why),
				},
				repairs: append(s.imageRemoved(l, fmt.Sprintf("blob %s it claims is corrupt (%s)", l, why), "is corrupt ("+why+")"),
					fmt.Sprintf(`moved corrupt blob file %s to quarantine/%s (%s)`, blobs.RelPath(l), l.Encoded(), why)),
			}
		},
	}, {
		name: "a blob file truncated",
		breakf: func(t *testing.T, s fsckStore) expect {
			x := s.extra
			overwrite(t, blobPath(s.db, x), []byte("written"))
			why := "7 bytes, 25 recorded"
			return expect{
				problems: []string{
					fmt.Sprintf(`blob %s: its file %s is 7 bytes, but 25 were recorded`, x, blobs.RelPath(x)),
				},
				repairs: []string{
					fmt.Sprintf(`namespace "default" dropped blob %s: its file is corrupt (%s)`, x, why),
					fmt.Sprintf(`removed the record of blob %s: its file %s is corrupt (%s)`, x, blobs.RelPath(x), why),
					fmt.Sprintf(`moved corrupt blob file %s to quarantine/%s (%s)`, blobs.RelPath(x), x.Encoded(), why),
				},
				images: 2,
			}
		},
	}, {
		name: "a layer file truncated",
		breakf: func(t *testing.T, s fsckStore) expect {
			l := s.img.layer.Digest
			overwrite(t, blobPath(s.db, l), []byte("layer"))
			why := fmt.Sprintf("5 bytes, %d recorded", s.img.layer.Size)
			return expect{
				problems: []string{
					fmt.Sprintf(`namespace "default": image "app:v1": blob %s it claims is corrupt (%s)`, l, why),
					fmt.Sprintf(`namespace "foo": image "app:v1": blob %s it claims is corrupt (%s)`, l, why),
					fmt.Sprintf(`blob %s: its file %s is 5 bytes, but %d were recorded`, l, blobs.RelPath(l), s.img.layer.Size),
				},
				repairs: append(s.imageRemoved(l, fmt.Sprintf("blob %s it claims is corrupt (%s)", l, why), "is corrupt ("+why+")"),
					fmt.Sprintf(`moved corrupt blob file %s to quarantine/%s (%s)`, blobs.RelPath(l), l.Encoded(), why)),
			}
		},
	}, {
		name: "a record's size flipped, its file sound",
		breakf: func(t *testing.T, s fsckStore) expect {
			l := s.img.layer.Digest
			update(t, s.db, func(tx *bolt.Tx) error {
				return putInt64(contentBucket(tx).Bucket([]byte(l)), keySize, s.img.layer.Size^1)
			})
			// The layer verifies: it is kept where it is, with its images;
			// only the record is corrected.
			return expect{
				problems: []string{
					fmt.Sprintf(`namespace "default": image "app:v1": layer 1 blob %s is %d bytes, but the manifest says %d`, l, s.img.layer.Size^1, s.img.layer.Size),
					fmt.Sprintf(`namespace "foo": image "app:v1": layer 1 blob %s is %d bytes, but the manifest says %d`, l, s.img.layer.Size^1, s.img.layer.Size),
					fmt.Sprintf(`namespace "default": blob %s: hold records %d bytes, the content record %d`, l, s.img.layer.Size, s.img.layer.Size^1),
					fmt.Sprintf(`namespace "foo": blob %s: hold records %d bytes, the content record %d`, l, s.img.layer.Size, s.img.layer.Size^1),
					fmt.Sprintf(`blob %s: its record says %d bytes, but its file %s has %d and its bytes verify (the record is wrong)`, l, s.img.layer.Size^1, blobs.RelPath(l), s.img.layer.Size),
				},
				repairs: []string{
					fmt.Sprintf(`blob %s is %d bytes, not %d: size corrected`, l, s.img.layer.Size, s.img.layer.Size^1),
				},
				images: 2,
			}
		},
	}, {
		name: "records that disagree",
		breakf: func(t *testing.T, s fsckStore) expect {
			c := s.img.config.Digest
			update(t, s.db, func(tx *bolt.Tx) error {
				// foo's holder entry lost, default's images count wrong.
				if err := holdersOf(contentBucket(tx).Bucket([]byte(c))).Delete([]byte("foo")); err != nil {
					return err
				}
				return putUint64(nsSub(namespacesBucket(tx).Bucket([]byte("default")), bucketBlobs).Bucket([]byte(c)), keyImages, 7)
			})
			return expect{
				problems: []string{
					fmt.Sprintf(`namespace "default": blob %s: records 7 image(s) claiming it, but 1 do`, c),
					fmt.Sprintf(`namespace "foo": blob %s: is held, but the content record does not name the namespace`, c),
				},
				repairs: []string{
					fmt.Sprintf(`namespace "default": blob %s is claimed by 1 image(s), not 7: count corrected`, c),
					fmt.Sprintf(`blob %s: namespace "foo" is named as a holder again`, c),
				},
				images: 2,
			}
		},
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newFsckStore(t)
			want := tc.breakf(t, s)
			rep := mustCheck(t, s.db, CheckOptions{VerifyBlobs: tc.verify})
			if rep.Clean() {
				t.Fatal("Check found the broken store clean")
			}
			wantLines(t, "problems", problemLines(rep.Problems), want.problems...)
			var notes []string
			for _, n := range rep.Notes {
				// The ingest's time is the file's; compare up to it.
				line, _, _ := strings.Cut(n.String(), "last written ")
				notes = append(notes, line+"last written ")
			}
			wantLines(t, "notes", strings.Join(notes, "\n"), want.notes...)

			before := dump(t, s.db)
			rep = mustCheck(t, s.db, CheckOptions{VerifyBlobs: tc.verify, Repair: true})
			wantSameLines(t, "repairs", strings.Join(rep.Repairs, "\n"), want.repairs...)
			if !rep.Clean() || len(rep.Remaining) != 0 {
				t.Fatalf("not clean after the repair:\n%s", problemLines(rep.Remaining))
			}
			if dump(t, s.db) == before {
				t.Fatal("the repair changed nothing")
			}
			if rep := mustCheck(t, s.db, CheckOptions{VerifyBlobs: true}); len(rep.Problems) != 0 || rep.Images != want.images {
				t.Fatalf("after the repair: %d images (want %d), problems:\n%s", rep.Images, want.images, problemLines(rep.Problems))
			}
			checkInvariants(t, s.db)
			// What is left works: the namespaces can be emptied and removed.
			namespaces, err := s.db.Namespaces().List()
			if err != nil {
				t.Fatal(err)
			}
			for _, n := range namespaces {
				ns := n.Name
				images, _ := s.db.ListImages(ns)
				for _, img := range images {
					if err := s.db.Images().Delete(ns, img.Name); err != nil {
						t.Fatal(err)
					}
				}
				blobs, _ := s.db.Content().List(ns)
				for _, b := range blobs {
					if err := s.db.Content().Delete(ns, b.Digest); err != nil {
						t.Fatal(err)
					}
				}
				if _, err := s.db.Namespaces().Delete(ns); err != nil {
					t.Fatal(err)
				}
			}
			if files := blobFiles(t, s.db); len(files) != 0 {
				t.Fatalf("blob files left after every namespace went: %v", files)
			}
		})
	}
}

// What the repair cannot mend is reported as remaining; what is not a blob
// is moved aside, never deleted.
func TestRepairLeavesWhatNeedsAHuman(t *testing.T) {
	s := newFsckStore(t)
	long := strings.Repeat("v", MaxLabelSize)
	update(t, s.db, func(tx *bolt.Tx) error {
		return labelsOf(namespacesBucket(tx).Bucket([]byte("foo"))).Put([]byte("k"), []byte(long))
	})
	stray := filepath.Join(filepath.Dir(blobPath(s.db, s.extra)), "not-a-blob")
	if err := os.WriteFile(stray, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	label := `namespace "foo": label "k": label key and value length (4097 bytes) greater than maximum size (4096 bytes): label too large`
	rep := mustCheck(t, s.db, CheckOptions{Repair: true})
	wantLines(t, "problems", problemLines(rep.Problems), `blobs/sha256/not-a-blob: is not a blob (the name must be 64 lowercase hex digits)`, label)
	wantLines(t, "remaining", problemLines(rep.Remaining), label)
	wantSameLines(t, "repairs", strings.Join(rep.Repairs, "\n"), `moved blobs/sha256/not-a-blob (a regular file) to quarantine/not-a-blob`)
	if _, err := os.Stat(filepath.Join(s.db.Root(), "quarantine", "not-a-blob")); err != nil {
		t.Fatalf("the stray file is not in quarantine/: %v", err)
	}
	if rep.Clean() {
		t.Fatal("Clean after a repair that left problems")
	}
}

// A read-only store can be checked while it cannot be changed, and waits
// for nobody but a writer.
func TestCheckReadOnly(t *testing.T) {
	root := t.TempDir()
	db, err := Open(root, Options{})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	ro, err := Open(root, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if rep := mustCheck(t, ro, CheckOptions{}); !rep.Clean() {
		t.Fatalf("problems: %s", problemLines(rep.Problems))
	}
	if _, err := ro.Namespaces().Create("x", nil); err == nil {
		t.Fatal("a read-only store took a namespace")
	}
	if _, err := Open(root, Options{}); !IsLocked(err) {
		t.Fatalf("a writer opened a store being checked: %v", err)
	}
	if _, err := Open(t.TempDir(), Options{ReadOnly: true}); err == nil || !strings.Contains(err.Error(), "no nsfs store at") {
		t.Fatalf("read-only open of an empty directory: %v", err)
	}
}

func removeFile(t *testing.T, path string) {
	t.Helper()
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
}

func overwrite(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o444); err != nil {
		t.Fatal(err)
	}
}

func update(t *testing.T, db *DB, fn func(tx *bolt.Tx) error) {
	t.Helper()
	if err := db.bolt.Update(fn); err != nil {
		t.Fatal(err)
	}
}

func ingestNames(t *testing.T, db *DB) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(db.Root(), "ingest"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// A damaged byte in an image record that the store can tell is mended,
// the image kept: a media type read again from the target blob, an ID
// another image has too given anew.
func TestRepairMendsDamagedImageRecords(t *testing.T) {
	s := newFsckStore(t)
	if _, err := s.db.Images().Put(ImageWrite{Namespace: "default", Ref: "app:v2", Manifest: s.img.manifest}); err != nil {
		t.Fatal(err)
	}
	update(t, s.db, func(tx *bolt.Tx) error {
		images := nsSub(namespacesBucket(tx).Bucket([]byte("default")), bucketImages)
		v1, err := decodeImageRecord(images.Get([]byte("app:v1")))
		if err != nil {
			return err
		}
		v2, err := decodeImageRecord(images.Get([]byte("app:v2")))
		if err != nil {
			return err
		}
		v1.target.MediaType = "application/vnd.oci.hmage.manifest.v1+json"
		v2.id = v1.id
		if err := images.Put([]byte("app:v1"), v1.encode()); err != nil {
			return err
		}
		return images.Put([]byte("app:v2"), v2.encode())
	})
	rep := mustCheck(t, s.db, CheckOptions{})
	if len(rep.Problems) == 0 {
		t.Fatal("the damaged records were found clean")
	}
	rep = mustCheck(t, s.db, CheckOptions{Repair: true})
	repairs := strings.Join(rep.Repairs, "\n")
	for _, want := range []string{
		`image "app:v1" of namespace "default": target media type "application/vnd.oci.hmage.manifest.v1+json" corrected to "application/vnd.oci.image.manifest.v1+json"`,
		`image "app:v2" of namespace "default": ID `,
	} {
		if !strings.Contains(repairs, want) {
			t.Errorf("repairs lack %q:\n%s", want, repairs)
		}
	}
	if len(rep.Remaining) != 0 {
		t.Fatalf("not clean after the repair:\n%s", problemLines(rep.Remaining))
	}
	if rep := mustCheck(t, s.db, CheckOptions{VerifyBlobs: true}); len(rep.Problems) != 0 || rep.Images != 3 {
		t.Fatalf("after the repair: %d images (want 3), problems:\n%s", rep.Images, problemLines(rep.Problems))
	}
	if v, err := s.db.Labels().Get(Object{Namespace: "default", Image: "app:v1"}, "k"); err != nil || v != "v" {
		t.Errorf("app:v1 kept its imagedata, so its label: %q, %v", v, err)
	}
	checkInvariants(t, s.db)
}

// What a damaged record puts in a report is escaped; the rest is as is.
func TestPrintable(t *testing.T) {
	for in, want := range map[string]string{
		`namespace "foo": fine`:     `namespace "foo": fine`,
		"blob sha\xb256:ab":         `blob sha\xb256:ab`,
		"image \"a\nb\": x":         `image "a\nb": x`,
		"ref \u0085 with NEL":       `ref \u0085 with NEL`,
		"naïve ünïcode stays as is": "naïve ünïcode stays as is",
	} {
		if got := Printable(in); got != want {
			t.Errorf("Printable(%q) = %q, want %q", in, got, want)
		}
	}
}
