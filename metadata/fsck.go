package metadata

import (
	"bytes"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/nsfs/nsfs/blobs"
	"github.com/nsfs/nsfs/imagegraph"
	"github.com/nsfs/nsfs/names"
	"github.com/opencontainers/go-digest"
	"github.com/pkg/errors"
	bolt "go.etcd.io/bbolt"
)

// CheckOptions choose what Check does beyond comparing records with each
// other and with the files.
type CheckOptions struct {
	// VerifyBlobs hashes every blob file and compares the digest with its
	// name (reads every byte of the store).
	VerifyBlobs bool
	// Repair removes what cannot be repaired and rebuilds what can be
	// derived (see Check), then checks again.
	Repair bool
}

// Problem is one broken invariant, named by the object it concerns.
type Problem struct {
	// Object names what is broken: `namespace "foo": image "x:1"`,
	// `blob sha256:…`, `blob file blobs/sha256/…`, `ingest/…`.
	Object string
	// What says how it is broken: `target blob sha256:… is missing`.
	What string
}

func (p Problem) String() string { return Printable(p.Object + ": " + p.What) }

// Printable escapes what a damaged record may put in a message — bytes
// that are not UTF-8, control characters — as Go does in a quoted string
// (\xb2, \n), so that a report is one line of text a terminal shows as
// it is. Printable text is unchanged.
func Printable(s string) string {
	clean := true
	for _, r := range s {
		if r == utf8.RuneError || !unicode.IsPrint(r) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if (r == utf8.RuneError && n == 1) || !unicode.IsPrint(r) {
			q := strconv.QuoteRune(r)
			if r == utf8.RuneError {
				q = fmt.Sprintf("'\\x%02x'", s[i])
			}
			b.WriteString(q[1 : len(q)-1])
		} else {
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

// Report is what Check found and did.
type Report struct {
	// What was looked at (in the last pass).
	Namespaces, Images, Blobs, Files int
	// Problems found by the first pass, one per broken invariant.
	Problems []Problem
	// Notes are what the first pass found that is no damage, one per
	// object: unfinished ingests (a mount killed while writing, or an
	// nsfs from before clean unmounts removed them), which nsfs gc and
	// the next mount remove, and a repair too.
	Notes []Problem
	// Repairs are the actions a repair took, one line each ("removed
	// orphan blob file blobs/sha256/…"); empty without CheckOptions.Repair.
	Repairs []string
	// Remaining are the problems the check after a repair still finds
	// (only with CheckOptions.Repair): what needs a human.
	Remaining []Problem
}

// Clean reports whether the store is (after a repair: is now) consistent.
func (r Report) Clean() bool {
	if len(r.Repairs) > 0 || len(r.Remaining) > 0 {
		return len(r.Remaining) == 0
	}
	return len(r.Problems) == 0
}

// Check verifies every invariant of the store (doc.go): records against
// records, and records against the files of the blob directory.
//
// It is meant for a store nothing else uses (nsfs fsck opens the store, so
// holds its lock): an ingest file is then always a leftover, and a blob
// file no record names an orphan. The invariants:
//
//   - every namespace has a valid name, an ID and its buckets; IDs are
//     unique and were taken from the sequence; labels are within limits;
//   - every image has a valid ref that is not below another image nor a
//     directory; its record decodes; its imagedata exists; its target is a
//     manifest or index whose blob is recorded, whose file exists with the
//     recorded size, and which it claims; every blob it claims is held by
//     its namespace; a manifest's config and layers (but foreign ones) are
//     claimed, with the sizes the manifest says;
//   - every imagedata bucket belongs to an image; every explicit directory
//     is a valid path that is not an image nor below one;
//   - every hold of a blob by a namespace is named by the blob's content
//     record (and the other way round), with the same size, and counts
//     the images of the namespace that claim the blob;
//   - every content record has a holder and its file, of its size; with
//     VerifyBlobs, the file's bytes hash to its name;
//   - every blob file has a content record. An ingest file left is no
//     broken invariant: it is a note (Report.Notes).
//
// With Repair, what cannot be repaired is removed: orphan blob files,
// ingest leftovers, corrupt blob files (wrong size, or wrong digest with
// VerifyBlobs), the records of blobs whose file is gone, the images that
// need such a blob, imagedata of no image. What can be derived is rebuilt:
// holder entries, images counts, sizes of holds, and holds of blobs an
// image claims. Every action is in Report.Repairs; the store is then
// checked again (Report.Remaining). The record changes are one
// transaction; files are removed after it commits.
func (db *DB) Check(opts CheckOptions) (Report, error) {
	state, err := db.scan(opts)
	if err != nil {
		return Report{}, err
	}
	rep := state.report()
	if !opts.Repair || len(rep.Problems) == 0 {
		return rep, nil
	}
	if state.damagedPages {
		return rep, damaged(db.root, "meta.db's pages are damaged, so its records must be salvaged into a new meta.db first")
	}
	if rep.Repairs, err = db.repair(state); err != nil {
		return rep, err
	}
	// The repair already hashed what needed hashing.
	again, err := db.scan(CheckOptions{VerifyBlobs: false})
	if err != nil {
		return rep, err
	}
	after := again.report()
	rep.Namespaces, rep.Images, rep.Blobs, rep.Files = after.Namespaces, after.Images, after.Blobs, after.Files
	rep.Remaining = after.Problems
	if rep.Remaining == nil {
		rep.Remaining = []Problem{}
	}
	return rep, nil
}

// fsckState is what one scan of the store found.
type fsckState struct {
	db       *DB
	problems []Problem
	notes    []Problem

	namespaces, images int
	files              map[digest.Digest]int64  // blob files and their sizes
	corrupt            map[digest.Digest]string // blob files whose bytes are wrong, and why
	sizeWrong          map[digest.Digest]bool   // content records whose size is wrong, their files verifying
	ingests            []blobs.IngestInfo
	strays             []blobs.Entry           // what is neither a blob file nor an ingest file: quarantined by a repair
	badReserve         os.FileMode             // what is planted at <root>/reserve (0: nothing)
	content            map[digest.Digest]int64 // content records and their sizes
	unheld             map[digest.Digest]bool  // unheld/ entries: files this store may delete
	damagedPages       bool                    // bbolt's own check failed: only a salvage repairs it
	manifests          map[digest.Digest]parsedTarget
}

// parsedTarget is an image target as checkManifest read it.
type parsedTarget struct {
	pm  imagegraph.Document
	err string // why it cannot be checked
}

func (s *fsckState) add(object, format string, args ...any) {
	s.problems = append(s.problems, Problem{Object: object, What: fmt.Sprintf(format, args...)})
}

func (s *fsckState) report() Report {
	return Report{
		Namespaces: s.namespaces,
		Images:     s.images,
		Blobs:      len(s.content),
		Files:      len(s.files),
		Problems:   s.problems,
		Notes:      s.notes,
	}
}

func nsObject(ns string) string { return fmt.Sprintf("namespace %q", ns) }

func imageObject(ns, ref string) string {
	return fmt.Sprintf("namespace %q: image %q", ns, shorten(ref))
}

// scan runs every check, without changing anything.
func (db *DB) scan(opts CheckOptions) (*fsckState, error) {
	s := &fsckState{
		db:        db,
		files:     map[digest.Digest]int64{},
		corrupt:   map[digest.Digest]string{},
		sizeWrong: map[digest.Digest]bool{},
		content:   map[digest.Digest]int64{},
		unheld:    map[digest.Digest]bool{},
		manifests: map[digest.Digest]parsedTarget{},
	}
	if err := db.scanFiles(s, opts); err != nil {
		return nil, err
	}
	pages, err := db.checkPages()
	if err != nil {
		return nil, err
	}
	for _, p := range pages {
		s.damagedPages = true
		s.problems = append(s.problems, p)
	}
	if s.damagedPages {
		// Reading on would meet the damage; a salvage reads what it can.
		return s, nil
	}
	if err := db.view(func(tx *bolt.Tx) error { return s.scanRecords(tx) }); err != nil {
		if errors.Is(err, errCorrupt) {
			s.damagedPages = true
			s.add("meta.db", "%v", err)
			return s, nil
		}
		return nil, errors.WithMessagef(err, "check store %s", db.root)
	}
	// Files against records.
	var orphans []digest.Digest
	for d := range s.files {
		if _, ok := s.content[d]; !ok {
			orphans = append(orphans, d)
		}
	}
	sortDigests(orphans)
	for _, d := range orphans {
		if s.unheld[d] {
			// Proven garbage a crash left: gc (or the next mount)
			// removes it; the store is consistent.
			continue
		} else {
			s.add("blob file "+blobs.RelPath(d), "no record names it (%d bytes; its record is lost, or it was put there by hand)", s.files[d])
		}
	}
	for _, in := range s.ingests {
		s.notes = append(s.notes, Problem{Object: blobs.IngestRelPath(in.Name),
			What: fmt.Sprintf("unfinished ingest (%d bytes, last written %s): no damage; nsfs gc or the next mount removes it",
				in.Size, in.ModTime.UTC().Format(time.RFC3339))})
	}
	return s, nil
}

// scanFiles lists the blob directory (and anything in it that is not a
// blob), the ingest directory, and, with VerifyBlobs, hashes every blob.
func (db *DB) scanFiles(s *fsckState, opts CheckOptions) error {
	found, err := db.walkStore()
	if err != nil {
		return err
	}
	s.files, s.ingests, s.strays, s.badReserve = found.files, found.ingests, found.strays, found.badReserve
	s.problems = append(s.problems, found.problems...)
	if opts.VerifyBlobs {
		var all []digest.Digest
		for d := range s.files {
			all = append(all, d)
		}
		sortDigests(all)
		for _, d := range all {
			got, err := db.hashBlob(d, s.files[d])
			if err != nil {
				return err
			}
			if got != d {
				s.corrupt[d] = fmt.Sprintf("its bytes hash to %s", got)
				s.add("blob file "+blobs.RelPath(d), "its bytes hash to %s (corrupt)", got)
			}
		}
	}
	return nil
}

// hashBlob hashes the file of blob d, which the scan found to have size
// bytes.
func (db *DB) hashBlob(d digest.Digest, size int64) (digest.Digest, error) {
	f, err := db.blobs.Open(d, size)
	if err != nil {
		return "", errors.WithMessagef(err, "verify blob file %s", blobs.RelPath(d))
	}
	defer f.Close()
	got, err := digest.SHA256.FromReader(f)
	return got, errors.WithMessagef(err, "verify blob file %s", blobs.RelPath(d))
}

func sortDigests(ds []digest.Digest) {
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
}

// holdKey names one namespace's hold of one blob.
type holdKey struct {
	ns string
	d  digest.Digest
}

// scanRecords checks the bbolt tree; s.files is already known. Its steps
// share a recordScan: the IDs seen so far, and the holds and claims that
// the content records are compared with at the end.
func (s *fsckState) scanRecords(tx *bolt.Tx) error {
	v1 := root(tx)
	all, content := namespacesBucket(tx), v1.Bucket(bucketContent)
	if content == nil {
		s.add("meta.db", "the content/ bucket is missing; the store cannot be checked further")
		return nil
	}
	if idsBucket(tx) == nil {
		s.add("meta.db", "the nsdir/ bucket (the ID sequence) is missing")
	}
	s.readUnheld(v1)
	s.judgeFileSizes(content)
	r := &recordScan{
		fsckState: s,
		records:   content,
		seq:       idSequence(tx),
		ids:       map[uint64]string{},
		holds:     map[holdKey]holdInfo{},
		claims:    map[holdKey]uint64{},
		holders:   map[holdKey]bool{},
	}
	if err := all.ForEach(func(name, v []byte) error {
		r.scanNamespace(all, name, v)
		return nil
	}); err != nil {
		return err
	}
	s.scanDataBuckets(tx)
	if err := content.ForEach(r.scanContentRecord); err != nil {
		return err
	}
	r.checkHolds()
	if len(s.problems) == 0 { // counters follow from the holds: judged once those are sound
		s.checkUsage(tx)
	}
	return nil
}

// recordScan is what one scanRecords pass gathers across namespaces.
type recordScan struct {
	*fsckState
	records *bolt.Bucket         // v1/content/
	seq     uint64               // the store's ID sequence
	ids     map[uint64]string    // every namespace and image ID, to its owner
	holds   map[holdKey]holdInfo // every hold of a blob by a namespace
	claims  map[holdKey]uint64   // how many images of the namespace claim the blob
	holders map[holdKey]bool     // the holders the content records name
}

// holdInfo is what a namespace's hold of a blob records.
type holdInfo struct {
	size   int64
	images uint64
}

// readUnheld notes the unheld/ entries: files the store may delete.
func (s *fsckState) readUnheld(v1 *bolt.Bucket) {
	if unheld := v1.Bucket(bucketUnheld); unheld != nil {
		_ = unheld.ForEach(func(k, _ []byte) error {
			s.unheld[digest.Digest(k)] = true
			return nil
		})
	}
}

// judgeFileSizes tells, for each blob file whose size is not the
// recorded one (cut short, grown), whether the file or the record is
// wrong. It runs first, so that the images needing such a blob say so.
func (s *fsckState) judgeFileSizes(content *bolt.Bucket) {
	_ = content.ForEachBucket(func(k []byte) error {
		d := digest.Digest(k)
		if fsize, ok := s.files[d]; ok && names.ValidateDigest(d) == nil {
			if size := getInt64(content.Bucket(k), keySize); fsize != size {
				// The record may be what is wrong (a flipped bit in
				// its size): a file whose bytes verify is the blob.
				if got, err := s.db.hashBlob(d, fsize); err == nil && got == d {
					s.sizeWrong[d] = true
				} else {
					s.corrupt[d] = fmt.Sprintf("%d bytes, %d recorded", fsize, size)
				}
			}
		}
		return nil
	})
}

// useID checks the ID of a namespace or image (object names it): set,
// unique in the store, and taken from the sequence.
func (s *recordScan) useID(object string, id uint64) {
	switch other, dup := s.ids[id]; {
	case id == 0:
		s.add(object, "has no ID")
	case dup:
		s.add(object, "has ID %d, which %s has too", id, other)
	case id > s.seq:
		s.add(object, "has ID %d, above the store's sequence %d (IDs would be reused)", id, s.seq)
	default:
		s.ids[id] = object
	}
}

// scanNamespace checks one entry of namespaces/ (v is its value: nil for
// a bucket): its name, ID and buckets, then its labels, holds, images,
// imagedata and directories.
func (s *recordScan) scanNamespace(all namespaceSet, name, v []byte) {
	ns := string(name)
	obj := nsObject(ns)
	if v != nil {
		s.add(fmt.Sprintf("namespaces/%q", ns), "is a key, not a namespace bucket")
		return
	}
	s.namespaces++
	nsb := all.Bucket(name)
	if err := names.ValidateNamespace(ns); err != nil {
		s.add(obj, "invalid name: %v", err)
	}
	s.useID(obj, getUint64(nsb, keyID))
	missing := false
	for _, sub := range [][]byte{bucketImages, bucketImageData, bucketDirs, bucketBlobs} {
		if nsSub(nsb, sub) == nil {
			s.add(obj, "its %s/ bucket is missing", sub)
			missing = true
		}
	}
	if missing {
		return
	}
	s.checkLabels(obj, labelsOf(nsb))
	s.scanHolds(ns, nsSub(nsb, bucketBlobs))
	owned := map[uint64]bool{}
	_ = nsSub(nsb, bucketImages).ForEach(func(k, v []byte) error {
		if id, ok := s.scanImage(ns, nsb, k, v); ok {
			owned[id] = true
		}
		return nil
	})
	s.scanImageData(obj, nsSub(nsb, bucketImageData), owned)
	s.scanDirs(obj, nsb)
}

// scanHolds checks the holds of namespace ns (its blobs/ bucket bb) and
// notes them for the content records.
func (s *recordScan) scanHolds(ns string, bb *bolt.Bucket) {
	obj := nsObject(ns)
	_ = bb.ForEach(func(k, v []byte) error {
		d := digest.Digest(k)
		bobj := fmt.Sprintf("%s: blob %s", obj, shorten(string(k)))
		if v != nil || bb.Bucket(k) == nil {
			s.add(bobj, "hold is a key, not a bucket")
			return nil
		}
		if err := names.ValidateDigest(d); err != nil {
			s.add(bobj, "invalid digest")
			return nil
		}
		rec := bb.Bucket(k)
		s.holds[holdKey{ns, d}] = holdInfo{size: getInt64(rec, keySize), images: getUint64(rec, keyImages)}
		s.checkLabels(bobj, labelsOf(rec))
		return nil
	})
}

// scanImage checks one entry k (value v) of the images/ bucket of
// namespace ns (nsb): its ref, its record, its imagedata, its claims and
// its target. It returns the image's ID once its record decodes.
func (s *recordScan) scanImage(ns string, nsb *bolt.Bucket, k, v []byte) (uint64, bool) {
	data, dirs := nsSub(nsb, bucketImageData), nsSub(nsb, bucketDirs)
	ref := string(k)
	iobj := imageObject(ns, ref)
	if v == nil {
		s.add(iobj, "is a bucket, not an image record")
		return 0, false
	}
	s.images++
	if err := names.ValidateRef(ref); err != nil {
		s.add(iobj, "invalid ref: %v", err)
	}
	if parent, ok := imageAbove(nsb, ref); ok {
		s.add(iobj, "is below image %q (an image cannot be a directory)", shorten(parent))
	}
	if hasKey(dirs, k) {
		s.add(iobj, "is also an explicit directory")
	}
	rec, err := decodeImageRecord(v)
	if err != nil {
		s.add(iobj, "record is malformed: %v", err)
		return 0, false
	}
	s.useID(iobj, rec.id)
	idb := data.Bucket(encodeUint64(rec.id))
	if idb == nil {
		s.add(iobj, "its imagedata/%d bucket is missing", rec.id)
		return rec.id, true
	}
	s.checkLabels(iobj, labelsOf(idb))
	t := rec.target
	if !imagegraph.IsDocument(t.MediaType) {
		s.add(iobj, "target media type %q is not a manifest or index", t.MediaType)
	}
	if names.ValidateDigest(t.Digest) != nil {
		s.add(iobj, "target digest %q is invalid", shorten(string(t.Digest)))
		return rec.id, true
	}
	set := s.scanClaims(ns, iobj, idb, nsSub(nsb, bucketBlobs), t.Digest)
	s.checkTarget(iobj, rec, set, nsSub(nsb, bucketBlobs), missingSet(idb))
	return rec.id, true
}

// scanClaims checks the blobs an image (iobj, of namespace ns, its
// imagedata idb) claims other than its target: held by the namespace
// (bb), their files there and sound. It returns the claim set.
func (s *recordScan) scanClaims(ns, iobj string, idb, bb *bolt.Bucket, target digest.Digest) map[digest.Digest]bool {
	set := map[digest.Digest]bool{}
	for _, d := range claimSet(idb) {
		set[d] = true
		s.claims[holdKey{ns, d}]++
		if bb.Bucket([]byte(d)) == nil {
			s.add(iobj, "claims blob %s, which the namespace does not hold", d)
		}
		if d == target {
			continue // said by checkTarget
		}
		if _, ok := s.files[d]; !ok {
			s.add(iobj, "blob %s it claims is missing (its file %s is gone)", d, blobs.RelPath(d))
		} else if why := s.corrupt[d]; why != "" {
			s.add(iobj, "blob %s it claims is corrupt (%s)", d, why)
		}
	}
	return set
}

// checkTarget checks an image's target blob: recorded, its file there,
// sound and of the recorded size, claimed (set); then, when it can be
// read, that it is the manifest or index the image records.
func (s *recordScan) checkTarget(iobj string, rec imageRecord, set map[digest.Digest]bool, bb *bolt.Bucket, missing map[digest.Digest]int64) {
	content := s.records
	t := rec.target
	cb := content.Bucket([]byte(t.Digest))
	fsize, hasFile := s.files[t.Digest]
	switch {
	case cb == nil && !hasFile:
		s.add(iobj, "target blob %s is missing (no record, no file)", t.Digest)
	case cb == nil:
		s.add(iobj, "target blob %s has no content record", t.Digest)
	case !hasFile:
		s.add(iobj, "target blob %s is missing (its file %s is gone)", t.Digest, blobs.RelPath(t.Digest))
	case fsize != t.Size:
		s.add(iobj, "target blob %s is %d bytes, but the image records %d", t.Digest, fsize, t.Size)
	case s.corrupt[t.Digest] != "":
		s.add(iobj, "target blob %s is corrupt (%s)", t.Digest, s.corrupt[t.Digest])
	}
	if !set[t.Digest] {
		s.add(iobj, "does not claim its target blob %s", t.Digest)
	}
	if hasFile && s.corrupt[t.Digest] == "" && fsize <= MaxManifestSize {
		s.checkManifest(iobj, rec, set, func(d digest.Digest) bool { return bb.Bucket([]byte(d)) != nil }, content, missing)
	}
}

// scanImageData checks that every imagedata bucket of a namespace (obj)
// belongs to an image (owned).
func (s *recordScan) scanImageData(obj string, data *bolt.Bucket, owned map[uint64]bool) {
	_ = data.ForEach(func(k, v []byte) error {
		if v != nil || len(k) != 8 {
			s.add(obj, "imagedata/%x is not an image's bucket", k)
			return nil
		}
		if id := decodeUint64(k); !owned[id] {
			s.add(obj, "imagedata/%d belongs to no image", id)
		}
		return nil
	})
}

// scanDirs checks the explicit directories of a namespace (obj, nsb):
// valid paths, none below an image.
func (s *recordScan) scanDirs(obj string, nsb *bolt.Bucket) {
	_ = nsSub(nsb, bucketDirs).ForEach(func(k, _ []byte) error {
		path := string(k)
		dobj := fmt.Sprintf("%s: directory images/%s", obj, shorten(path))
		if err := names.ValidateRef(path); err != nil {
			s.add(dobj, "invalid path: %v", err)
			return nil
		}
		if parent, ok := imageAbove(nsb, path); ok {
			s.add(dobj, "is below image %q", shorten(parent))
		}
		return nil
	})
}

// scanContentRecord checks one entry of content/ (k, v): a blob's record
// with holders that hold it, with the holds' size, and its file of that
// size.
func (s *recordScan) scanContentRecord(k, v []byte) error {
	content := s.records
	d := digest.Digest(k)
	cobj := "blob " + string(k)
	if v != nil || names.ValidateDigest(d) != nil {
		s.add("content/"+shorten(string(k)), "is not a blob's content record")
		return nil
	}
	cb := content.Bucket(k)
	size := getInt64(cb, keySize)
	s.content[d] = size
	n := 0
	if hb := holdersOf(cb); !hb.empty() {
		_ = hb.ForEach(func(ns, _ []byte) error {
			n++
			s.holders[holdKey{string(ns), d}] = true
			h, ok := s.holds[holdKey{string(ns), d}]
			switch {
			case !ok:
				s.add(cobj, "names holder namespace %q, which does not hold it", ns)
			case h.size != size:
				s.add(nsObject(string(ns))+": blob "+string(d), "hold records %d bytes, the content record %d", h.size, size)
			}
			return nil
		})
	}
	if n == 0 {
		s.add(cobj, "has no holder")
	}
	fsize, hasFile := s.files[d]
	switch {
	case !hasFile:
		s.add(cobj, "its file %s is missing", blobs.RelPath(d))
	case fsize != size && s.sizeWrong[d]:
		s.add(cobj, "its record says %d bytes, but its file %s has %d and its bytes verify (the record is wrong)", size, blobs.RelPath(d), fsize)
	case fsize != size:
		s.add(cobj, "its file %s is %d bytes, but %d were recorded", blobs.RelPath(d), fsize, size)
	}
	return nil
}

// checkHolds checks, in order, every hold against the content records
// and the images that claim the blob.
func (s *recordScan) checkHolds() {
	keys := make([]holdKey, 0, len(s.holds))
	for k := range s.holds {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		return keys[i].ns < keys[j].ns || keys[i].ns == keys[j].ns && keys[i].d < keys[j].d
	})
	for _, k := range keys {
		h := s.holds[k]
		hobj := nsObject(k.ns) + ": blob " + string(k.d)
		if _, ok := s.content[k.d]; !ok {
			s.add(hobj, "is held, but the blob has no content record")
		} else if !s.holders[k] {
			s.add(hobj, "is held, but the content record does not name the namespace")
		}
		if h.images != s.claims[k] {
			s.add(hobj, "records %d image(s) claiming it, but %d do", h.images, s.claims[k])
		}
	}
}

// checkLabels checks the limits of one labels bucket.
func (s *fsckState) checkLabels(object string, lb keyRange) {
	_ = lb.ForEach(func(k, v []byte) error {
		switch {
		case v == nil:
			s.add(object, "label %q is a bucket", shorten(string(k)))
		case len(v) == 0:
			s.add(object, "label %q has an empty value", shorten(string(k)))
		default:
			if err := names.ValidateLabel(string(k), string(v)); err != nil {
				s.add(object, "label %q: %v", shorten(string(k)), err)
			}
		}
		return nil
	})
}

// checkManifest reads an image's target and checks that a manifest's
// config and layers (foreign ones aside) are claimed, with the sizes it
// names, or missing (an incomplete image, incomplete.go) while the
// namespace does not hold them. An index's children may be absent (a pull of some platforms), and
// those present were claimed as far as they were visible when the image
// was written: an index is checked no further than its own claims.
func (s *fsckState) checkManifest(object string, rec imageRecord, claimed map[digest.Digest]bool, held func(digest.Digest) bool, content *bolt.Bucket, missing map[digest.Digest]int64) {
	// Images share manifests (every copy, every tag): each is read once.
	parsed, ok := s.manifests[rec.target.Digest]
	if !ok {
		data, err := s.db.readSmallBlob(rec.target.Digest)
		if err != nil {
			parsed.err = fmt.Sprintf("target blob %s cannot be read: %v", rec.target.Digest, err)
		} else if parsed.pm, err = imagegraph.Parse(data); err != nil {
			parsed.err = fmt.Sprintf("target blob %s is not a manifest or index: %v", rec.target.Digest, err)
		}
		s.manifests[rec.target.Digest] = parsed
	}
	if parsed.err != "" {
		s.add(object, "%s", parsed.err)
		return
	}
	pm := parsed.pm
	if pm.MediaType != rec.target.MediaType {
		s.add(object, "target blob %s is a %s, but the image records %s", rec.target.Digest, pm.MediaType, rec.target.MediaType)
	}
	if pm.IsIndex() {
		return
	}
	for _, r := range pm.Children {
		if r.Foreign {
			continue
		}
		if !held(r.Digest) {
			if _, ok := missing[r.Digest]; !ok {
				s.add(object, "%s blob %s is not held by the namespace", r.Role, r.Digest)
			}
			continue
		}
		if !claimed[r.Digest] {
			s.add(object, "%s blob %s is held by the namespace, but not claimed by the image", r.Role, r.Digest)
		}
		if cb := content.Bucket([]byte(r.Digest)); cb != nil {
			if size := getInt64(cb, keySize); size != r.Size {
				s.add(object, "%s blob %s is %d bytes, but the manifest says %d", r.Role, r.Digest, size, r.Size)
			}
		}
	}
}

// scanDataBuckets checks schema version 3's top level (nstop.go): every
// data bucket nsdata/<id>/ belongs to the namespace record with that ID,
// no record has a nested bucket, and the data of ID 0 (what a namespace
// without data of its own reads) is there and empty.
func (s *fsckState) scanDataBuckets(tx *bolt.Tx) {
	if legacyLayout(tx) {
		return
	}
	owners := map[uint64]bool{}
	all := namespacesBucket(tx)
	_ = all.ForEachBucket(func(name []byte) error {
		nsb := all.Bucket(name)
		owners[getUint64(nsb, keyID)] = true
		_ = nsb.ForEachBucket(func(k []byte) error {
			s.add(nsObject(string(name)), "its record has a nested bucket %q", k)
			return nil
		})
		return nil
	})
	empty := tx.Bucket(noData)
	if empty == nil {
		s.add("meta.db", "the nsdata/0/ bucket (the data of a namespace that has none yet) is missing")
	} else {
		_ = empty.ForEach(func(k, v []byte) error {
			if b := empty.Bucket(k); v != nil || b == nil || !isEmptyBucket(b) {
				s.add("meta.db", "nsdata/0/ (the data of a namespace that has none yet) is not empty: it has %q", k)
			}
			return nil
		})
	}
	c := tx.Cursor()
	for k, _ := c.Seek(prefixData); k != nil && bytes.HasPrefix(k, prefixData); k, _ = c.Next() {
		id := k[len(prefixData):]
		if len(id) != 8 {
			s.add(fmt.Sprintf("data bucket %q", k), "is not named by an ID")
		}
	}
	for _, n := range orphanData(tx, owners) {
		s.add(fmt.Sprintf("data bucket nsdata/%d", n), "belongs to no namespace (no record has ID %d)", n)
	}
}
