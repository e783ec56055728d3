package metadata

import (
	"bytes"
	"fmt"
	"maps"
	"os"
	"slices"
	"sort"

	"github.com/nsfs/nsfs/blobs"
	"github.com/nsfs/nsfs/imagegraph"
	"github.com/opencontainers/go-digest"
	"github.com/pkg/errors"
	bolt "go.etcd.io/bbolt"
)

// repair is Check's repair (see Check): one transaction over the records,
// then the files. It returns the actions taken, one line each.
func (db *DB) repair(s *fsckState) ([]string, error) {
	// Where the repair moves what it never deletes must be sound before
	// anything changes.
	if err := db.blobs.CheckQuarantine(); err != nil {
		return nil, errors.WithMessagef(err, "repair store %s", db.root)
	}
	var actions []string
	did := func(format string, args ...any) { actions = append(actions, fmt.Sprintf(format, args...)) }

	// Guarded: bbolt may find damage its check missed only when it writes
	// (a page in use listed as free); that panic becomes ErrDamaged, and
	// nsfs fsck salvages into a new file and repairs that instead.
	err := db.guardedUpdate(func(tx *bolt.Tx) error {
		actions = nil
		return db.repairRecords(tx, s.available, did)
	})
	if err != nil {
		return nil, errors.WithMessagef(err, "repair store %s", db.root)
	}
	// Then the files, in this order: what must not be served is moved
	// aside, what no record names is adopted, what the records prove
	// garbage goes.
	for _, step := range []func(*fsckState, func(string, ...any)) error{db.quarantineFiles, db.adoptUnrecorded, db.removeGarbageFiles} {
		if err := step(s, did); err != nil {
			return actions, err
		}
	}
	return actions, nil
}

// available says whether a blob can be used: its file is there with the
// bytes it should have. A content record then gets the file's size.
func (s *fsckState) available(d digest.Digest) (int64, string) {
	size, ok := s.files[d]
	switch {
	case !ok:
		return 0, "is missing"
	case s.corrupt[d] != "":
		return 0, "is corrupt (" + s.corrupt[d] + ")"
	}
	return size, ""
}

// repairRecords is the repair's transaction: the schema's shape, then
// each namespace, then the content records.
func (db *DB) repairRecords(tx *bolt.Tx, available func(digest.Digest) (int64, string), did func(string, ...any)) error {
	if err := repairShape(tx, did); err != nil {
		return err
	}
	all := namespacesBucket(tx)
	var names [][]byte
	_ = all.ForEachBucket(func(k []byte) error {
		names = append(names, k)
		return nil
	})
	used := usedNamespaceIDs(all)
	for _, name := range names {
		if err := db.repairNamespace(tx, string(name), used, available, did); err != nil {
			return err
		}
	}
	if err := repairContent(tx, available, did); err != nil {
		return err
	}
	// Holds were changed directly: the shareable index and the usage
	// counters are recounted.
	if err := rebuildShareableIndex(tx); err != nil {
		return err
	}
	return recountUsage(tx)
}

// quarantineFiles moves corrupt blob files, and anything that is not a
// blob or an ingest file, to quarantine/: never deleted. A planted
// reserve (a link, a fifo) is removed itself.
func (db *DB) quarantineFiles(s *fsckState, did func(string, ...any)) error {
	var corrupt []digest.Digest
	for d := range s.corrupt {
		corrupt = append(corrupt, d)
	}
	sortDigests(corrupt)
	for _, d := range corrupt {
		if _, ok := s.files[d]; !ok {
			continue
		}
		to, err := db.blobs.QuarantineBlob(d)
		if err != nil {
			return errors.WithMessagef(err, "repair: quarantine blob file %s", blobs.RelPath(d))
		}
		did("moved corrupt blob file %s to %s (%s)", blobs.RelPath(d), to, s.corrupt[d])
	}
	if s.badReserve != 0 && !s.badReserve.IsDir() {
		// A link (or fifo, device) itself goes; what it points at is
		// never touched. The reserve is made anew at the next open.
		if err := os.Remove(db.reservePath()); err != nil && !errors.Is(err, os.ErrNotExist) {
			return errors.WithMessagef(err, "repair: remove the planted %s", reserveName)
		}
		did("removed %s, %s where the store keeps its reserved space (its target, if any, untouched)", reserveName, blobs.KindOf(s.badReserve))
	}
	for _, e := range s.strays {
		to, err := db.blobs.Quarantine(e)
		if err != nil {
			return errors.WithMessagef(err, "repair: quarantine %s", e.Path)
		}
		did("moved %s (%s) to %s", e.Path, blobs.KindOf(e.Mode), to)
	}
	return nil
}

// adoptUnrecorded deals with the blob files no record names now: they are
// someone's data (their records were lost, or the repair dropped the
// images that held them). Those whose bytes verify are adopted, held by
// lostFoundNamespace; the others are quarantined. Never deleted.
func (db *DB) adoptUnrecorded(s *fsckState, did func(string, ...any)) error {
	verified, err := db.verifyUnrecorded(s)
	if err != nil {
		return err
	}
	for _, d := range verified.corrupt {
		to, err := db.blobs.QuarantineBlob(d)
		if err != nil {
			return errors.WithMessagef(err, "repair: quarantine blob file %s", blobs.RelPath(d))
		}
		did("moved corrupt blob file %s to %s (%s)", blobs.RelPath(d), to, s.corrupt[d])
	}
	if len(verified.good) == 0 {
		return nil
	}
	if err := db.guardedUpdate(func(tx *bolt.Tx) error {
		if err := adoptFiles(tx, verified.good, s.files, did); err != nil {
			return err
		}
		if err := rebuildShareableIndex(tx); err != nil {
			return err
		}
		return recountUsage(tx)
	}); err != nil {
		return errors.WithMessagef(err, "repair store %s", db.root)
	}
	return nil
}

// removeGarbageFiles removes what the records prove garbage (the intents
// of a crash), and the ingest leftovers.
func (db *DB) removeGarbageFiles(s *fsckState, did func(string, ...any)) error {
	var stats GCStats
	if err := db.collectBlobs(&stats); err != nil {
		return err
	}
	for _, g := range stats.Removed {
		did("removed blob file %s: no namespace holds it", g.Path)
	}
	for _, in := range s.ingests {
		if err := db.blobs.RemoveIngest(in.Name); err != nil {
			return errors.WithMessagef(err, "repair: remove %s", blobs.IngestRelPath(in.Name))
		}
		did("removed unfinished ingest %s (%d bytes)", blobs.IngestRelPath(in.Name), in.Size)
	}
	return nil
}

// unrecordedFiles are the blob files no record names after a repair's
// transaction, hashed: good ones verify, corrupt ones do not.
type unrecordedFiles struct {
	good    map[digest.Digest]bool
	corrupt []digest.Digest
}

// verifyUnrecorded hashes the blob files (of the scan, not quarantined)
// that neither a content record nor an unheld/ entry names now.
func (db *DB) verifyUnrecorded(s *fsckState) (unrecordedFiles, error) {
	out := unrecordedFiles{good: map[digest.Digest]bool{}}
	var candidates []digest.Digest
	if err := db.bolt.View(func(tx *bolt.Tx) error {
		for d := range s.files {
			if s.corrupt[d] != "" || contentBucket(tx).Bucket([]byte(d)) != nil {
				continue
			}
			if b := unheldBucket(tx); b != nil && b.Get([]byte(d)) != nil {
				continue
			}
			candidates = append(candidates, d)
		}
		return nil
	}); err != nil {
		return out, err
	}
	sortDigests(candidates)
	for _, d := range candidates {
		got, err := db.hashBlob(d, s.files[d])
		if err != nil {
			return out, err
		}
		if got != d {
			s.corrupt[d] = fmt.Sprintf("its bytes hash to %s", got)
			out.corrupt = append(out.corrupt, d)
			continue
		}
		out.good[d] = true
	}
	return out, nil
}

// adoptFiles makes lostFoundNamespace hold every verified blob file that
// no content record names after the repair, creating the namespace if
// needed: the bytes stay, and a person can look at them, tag them or
// delete them through the mount.
func adoptFiles(tx *bolt.Tx, verified map[digest.Digest]bool, sizes map[digest.Digest]int64, did func(string, ...any)) error {
	var orphans []digest.Digest
	for d := range verified {
		if contentBucket(tx).Bucket([]byte(d)) == nil {
			orphans = append(orphans, d)
		}
	}
	if len(orphans) == 0 {
		return nil
	}
	sortDigests(orphans)
	nsb := namespacesBucket(tx).Bucket([]byte(lostFoundNamespace))
	if nsb == nil {
		if _, err := createNamespace(tx, lostFoundNamespace, nil); err != nil {
			return err
		}
		nsb = namespacesBucket(tx).Bucket([]byte(lostFoundNamespace))
		did("created namespace %q for blob files no record names", lostFoundNamespace)
	}
	t := now()
	for _, d := range orphans {
		if _, err := hold(tx, nsb, lostFoundNamespace, d, sizes[d], t); err != nil {
			return err
		}
		did("adopted blob file %s (%d bytes, its digest verified) into namespace %q", blobs.RelPath(d), sizes[d], lostFoundNamespace)
	}
	return nil
}

// guardedUpdate is bbolt's Update for a repair: a panic (damage bbolt
// meets only when it writes) is ErrDamaged, with nothing committed.
func (db *DB) guardedUpdate(fn func(*bolt.Tx) error) error {
	err := guarded(func() error { return db.bolt.Update(fn) })
	if errors.Is(err, errCorrupt) {
		return damaged(db.root, "%v", err)
	}
	return err
}

// repairShape gives the store back the buckets every request relies on
// (schemaShape), empty where they were lost; what was in a lost bucket
// stays unreadable, and its blob files are adopted afterwards.
func repairShape(tx *bolt.Tx, did func(string, ...any)) error {
	v1, err := tx.CreateBucketIfNotExists(bucketV1)
	if err != nil {
		return err
	}
	if err := repairTop(v1, did); err != nil {
		return err
	}
	ids, err := repairIDs(tx, did)
	if err != nil {
		return err
	}
	if !legacyLayout(tx) && tx.Bucket(noData) == nil {
		if _, err := createData(tx, noDataID); err != nil {
			return err
		}
		did("nsdata/0/ (the empty data of a namespace that has none yet) was missing: made anew")
	}
	all := namespacesBucket(tx)
	var keys, names [][]byte
	_ = all.ForEach(func(k, v []byte) error {
		if v != nil {
			keys = append(keys, append([]byte(nil), k...))
		} else {
			names = append(names, append([]byte(nil), k...))
		}
		return nil
	})
	for _, k := range keys {
		if err := all.Delete(k); err != nil {
			return err
		}
		did("removed namespaces/%q: a key where a namespace bucket should be", k)
	}
	keeps := func(nsb *bolt.Bucket, taken map[uint64]bool) bool {
		id := getUint64(nsb, keyID)
		return len(nsb.Get(keyID)) == 8 && id != 0 && id <= ids.Sequence() && !taken[id]
	}
	// A namespace that lost its ID, or else one whose ID names no data
	// bucket (the ID changed), finds its data again when it is the only
	// one, and one data bucket is the only one no namespace names. A
	// namespace that never wrote has no data bucket either, so with more
	// candidates or orphans nothing is guessed.
	var without, dataless []string
	kept := map[uint64]bool{}
	for _, name := range names {
		nsb := all.Bucket(name)
		if !keeps(nsb, kept) {
			without = append(without, string(name))
			continue
		}
		kept[getUint64(nsb, keyID)] = true
		if !legacyLayout(tx) && tx.Bucket(dataKey(nsb.Get(keyID))) == nil {
			dataless = append(dataless, string(name))
		}
	}
	var adopt uint64
	var adopter string
	orphans := orphanData(tx, kept)
	// A record without an ID surely lost its data; one without data may
	// never have written.
	candidates := without
	if len(without) == 0 {
		candidates = dataless
	}
	if len(candidates) == 1 && len(orphans) == 1 && orphans[0] <= ids.Sequence() {
		adopt, adopter, orphans = orphans[0], candidates[0], nil
	}
	made, err := orphanNamespaces(tx, ids, orphans, len(candidates), did)
	if err != nil {
		return err
	}
	names = append(names, made...)
	nsIDs := map[uint64]bool{}
	for _, name := range names {
		nsb := all.Bucket(name)
		if string(name) == adopter || !keeps(nsb, nsIDs) {
			newID, what := adopt, "the ID of the one data bucket no namespace named"
			if string(name) != adopter {
				newID, what = ids.Sequence()+1, "a new ID, and no data"
				if err := ids.SetSequence(newID); err != nil {
					return err
				}
			}
			if err := putUint64(nsb, keyID, newID); err != nil {
				return err
			}
			did("namespace %q had no ID it can keep or its ID named no data: given ID %d (%s)", name, newID, what)
			nsIDs[newID] = true
		} else {
			nsIDs[getUint64(nsb, keyID)] = true
		}
		for _, sub := range [][]byte{bucketImages, bucketImageData, bucketDirs, bucketBlobs} {
			data := nsData(nsb)
			if data == nil {
				return errors.WithMessagef(errCorrupt, "namespace %q: its data bucket cannot be made", name)
			}
			if made, err := remakeBucket(data, sub); err != nil {
				return err
			} else if made {
				did("namespace %q: its %s/ bucket was missing: made anew, empty", name, sub)
			}
		}
	}
	return nil
}

// repairTop gives v1/ its version and the buckets Open and every request
// need, empty where they were lost.
func repairTop(v1 *bolt.Bucket, did func(string, ...any)) error {
	if getUint64(v1, keyVersion) == 0 {
		// Version 1, whatever the layout: the migration at the next
		// open moves what is nested and finds nothing else to do.
		if err := putUint64(v1, keyVersion, 1); err != nil {
			return err
		}
	}
	for _, b := range [][]byte{bucketContent, bucketUnheld} {
		if made, err := remakeBucket(v1, b); err != nil {
			return err
		} else if made {
			did("v1/%s/ was missing: made anew, empty", b)
		}
	}
	return nil
}

// orphanNamespaces gives each data bucket of orphans (IDs no namespace
// names) a namespace of its own, lost-found-<id>, that no request can reach
// otherwise: which namespace lost it is a guess when several could have
// (candidates), and a data bucket without a namespace is refused at mount.
// It returns the names it made.
func orphanNamespaces(tx *bolt.Tx, ids *bolt.Bucket, orphans []uint64, candidates int, did func(string, ...any)) ([][]byte, error) {
	var made [][]byte
	for _, id := range orphans {
		name := fmt.Sprintf("%s-%d", lostFoundNamespace, id)
		_, err := createNamespace(tx, name, nil)
		for n := 2; errors.Is(err, ErrExists); n++ { // a namespace of that name is not this one
			name = fmt.Sprintf("%s-%d-%d", lostFoundNamespace, id, n)
			_, err = createNamespace(tx, name, nil)
		}
		if err != nil {
			return nil, errors.WithMessagef(err, "data bucket nsdata/%d belongs to no namespace", id)
		}
		if id > ids.Sequence() {
			if err := ids.SetSequence(id); err != nil {
				return nil, err
			}
		}
		if err := putUint64(namespacesBucket(tx).Bucket([]byte(name)), keyID, id); err != nil {
			return nil, err
		}
		did("data bucket nsdata/%d belonged to no namespace (%d data buckets and %d namespaces without data: no guess): given the new namespace %q", id, len(orphans), candidates, name)
		made = append(made, []byte(name))
	}
	return made, nil
}

// orphanData is the IDs of the data buckets (nsdata/<id>, 0 aside) of no
// namespace of named (version 3).
func orphanData(tx *bolt.Tx, named map[uint64]bool) []uint64 {
	var orphans []uint64
	if legacyLayout(tx) {
		return nil
	}
	c := tx.Cursor()
	for k, _ := c.Seek(prefixData); k != nil && bytes.HasPrefix(k, prefixData); k, _ = c.Next() {
		if id := k[len(prefixData):]; len(id) == 8 && decodeUint64(id) != 0 && !named[decodeUint64(id)] {
			orphans = append(orphans, decodeUint64(id))
		}
	}
	return orphans
}

// repairIDs gives a store that lost nsdir/ (version 3) a new one, its
// sequence the highest ID a namespace or an image has (the IDs given
// since are lost with it, and none is reused), and returns the bucket of
// the ID sequence.
func repairIDs(tx *bolt.Tx, did func(string, ...any)) (*bolt.Bucket, error) {
	if ids := idsBucket(tx); ids != nil {
		return ids, nil
	}
	ids, err := tx.CreateBucket(bucketNSDir)
	if err != nil {
		return nil, err
	}
	highest := uint64(0)
	all := namespacesBucket(tx)
	_ = all.ForEachBucket(func(name []byte) error {
		nsb := all.Bucket(name)
		highest = max(highest, getUint64(nsb, keyID))
		if images := nsSub(nsb, bucketImages); images != nil {
			_ = images.ForEach(func(_, v []byte) error {
				if rec, err := decodeImageRecord(v); err == nil {
					highest = max(highest, rec.id)
				}
				return nil
			})
		}
		if data := nsSub(nsb, bucketImageData); data != nil {
			_ = data.ForEachBucket(func(k []byte) error {
				highest = max(highest, decodeUint64(k))
				return nil
			})
		}
		return nil
	})
	if err := ids.SetSequence(highest); err != nil {
		return nil, err
	}
	did("%s/ was missing: made anew, its ID sequence at %d, the highest ID in use", bucketNSDir, highest)
	return ids, nil
}

// remakeBucket makes parent's bucket name, empty, unless it exists (a key
// of that name goes first); it reports whether it made one.
func remakeBucket(parent *bolt.Bucket, name []byte) (bool, error) {
	if parent.Bucket(name) != nil {
		return false, nil
	}
	if parent.Get(name) != nil {
		if err := parent.Delete(name); err != nil {
			return false, err
		}
	}
	_, err := parent.CreateBucket(name)
	return err == nil, err
}

// usedNamespaceIDs is the set of the namespaces' IDs: image IDs come from
// the same sequence and must not repeat them (fs/ makes inodes of both).
func usedNamespaceIDs(all namespaceSet) map[uint64]bool {
	used := map[uint64]bool{}
	_ = all.ForEachBucket(func(name []byte) error {
		used[getUint64(all.Bucket(name), keyID)] = true
		return nil
	})
	return used
}

// repairImageRecords mends what a damaged byte in an image record breaks
// but the store can tell. The target's size is its blob's (when the blob
// is there, sound), and a target media type that is no manifest's or
// index's is read again from the target blob (if it parses).
// An image whose ID it cannot keep gets a new one: an ID another image of
// the namespace has too (the imagedata stays with the image whose target
// it claims; the other starts with empty imagedata, its labels lost and
// its claims rebuilt by repairNamespace), an ID used elsewhere in the
// store (used: namespaces, and images of the namespaces repaired before;
// its imagedata moves with it), or one above the store's sequence.
func repairImageRecords(tx *bolt.Tx, ns string, images, data *bolt.Bucket, used map[uint64]bool, available func(digest.Digest) (int64, string), parse func(digest.Digest) (imagegraph.Document, error), did func(string, ...any)) error {
	var all []repairImage
	_ = images.ForEach(func(k, v []byte) error {
		if v != nil {
			if rec, err := decodeImageRecord(v); err == nil {
				all = append(all, repairImage{string(k), rec})
			}
		}
		return nil
	})
	changed := correctTargets(ns, all, available, parse, did)
	if err := reassignImageIDs(idsBucket(tx), ns, all, data, used, changed, did); err != nil {
		return err
	}
	for i, e := range all {
		if changed[i] {
			if err := images.Put([]byte(e.ref), e.rec.encode()); err != nil {
				return err
			}
		}
	}
	return nil
}

// correctTargets gives each image's target the size of its blob, and a
// media type that is no manifest's or index's the one read from the blob.
// It returns which images changed.
func correctTargets(ns string, all []repairImage, available func(digest.Digest) (int64, string), parse func(digest.Digest) (imagegraph.Document, error), did func(string, ...any)) map[int]bool {
	changed := map[int]bool{}
	for i := range all {
		e := &all[i]
		size, why := available(e.rec.target.Digest)
		if why != "" {
			continue
		}
		if size != e.rec.target.Size {
			did("image %q of namespace %q: target size %d corrected to %d (its target blob's)", shorten(e.ref), ns, e.rec.target.Size, size)
			e.rec.target.Size = size
			changed[i] = true
		}
		if imagegraph.IsDocument(e.rec.target.MediaType) {
			continue
		}
		if pm, err := parse(e.rec.target.Digest); err == nil {
			did("image %q of namespace %q: target media type %q corrected to %q (read from its target blob)", shorten(e.ref), ns, shorten(e.rec.target.MediaType), pm.MediaType)
			e.rec.target.MediaType = pm.MediaType
			changed[i] = true
		}
	}
	return changed
}

// idOwners says, for each ID the images have, which image keeps it: the
// one whose target the imagedata claims, else the first.
func idOwners(all []repairImage, data *bolt.Bucket) map[uint64]int {
	owner := map[uint64]int{}
	for i, e := range all {
		idb := data.Bucket(encodeUint64(e.rec.id))
		if _, taken := owner[e.rec.id]; !taken && idb != nil && claimsOf(idb).has([]byte(e.rec.target.Digest)) {
			owner[e.rec.id] = i
		}
	}
	for i, e := range all {
		if _, taken := owner[e.rec.id]; !taken {
			owner[e.rec.id] = i
		}
	}
	return owner
}

// reassignImageIDs gives every image that cannot keep its ID (see
// repairImageRecords) a new one from the ID sequence (ids), and every
// image that keeps it its imagedata; changed gets the images it changed.
func reassignImageIDs(ids *bolt.Bucket, ns string, all []repairImage, data *bolt.Bucket, used map[uint64]bool, changed map[int]bool, did func(string, ...any)) error {
	owner := idOwners(all, data)
	for i := range all {
		e := &all[i]
		id := e.rec.id
		keeps := owner[id] == i
		if keeps && id != 0 && id <= ids.Sequence() && !used[id] {
			used[id] = true
			if data.Bucket(encodeUint64(id)) == nil {
				if _, err := data.CreateBucket(encodeUint64(id)); err != nil {
					return err
				}
				did("image %q of namespace %q: its imagedata/%d was missing: made anew (its labels are lost)", shorten(e.ref), ns, id)
			}
			continue
		}
		newID := ids.Sequence() + 1
		if err := ids.SetSequence(newID); err != nil {
			return err
		}
		dst, err := data.CreateBucket(encodeUint64(newID))
		if err != nil {
			return err
		}
		what := "its labels are lost"
		if src := data.Bucket(encodeUint64(id)); keeps && src != nil {
			salvageBucket(src, dst, "imagedata", did)
			if err := data.DeleteBucket(encodeUint64(id)); err != nil {
				return err
			}
			what = "its imagedata moves with it"
		}
		did("image %q of namespace %q: ID %d, which it cannot keep, changed to %d (%s)", shorten(e.ref), ns, id, newID, what)
		e.rec.id = newID
		used[newID] = true
		changed[i] = true
	}
	return nil
}

// repairNamespace removes the images of ns that need a blob that is gone,
// imagedata of no image, holds of blobs that are gone; rebuilds claim
// sets (an image claims its target and its manifest's blobs), holds of
// claimed blobs, images counts and hold sizes. A namespace without its
// buckets is left to a human.
func (db *DB) repairNamespace(tx *bolt.Tx, ns string, used map[uint64]bool, available func(digest.Digest) (int64, string), did func(string, ...any)) error {
	nsb := namespacesBucket(tx).Bucket([]byte(ns))
	images, data, bb := nsSub(nsb, bucketImages), nsSub(nsb, bucketImageData), nsSub(nsb, bucketBlobs)
	if images == nil || data == nil || bb == nil {
		return nil
	}
	if err := repairImageRecords(tx, ns, images, data, used, available, db.parseBlob, did); err != nil {
		return err
	}
	r := &nsRepair{db: db, tx: tx, ns: ns, nsb: nsb, images: images, data: data, bb: bb, available: available, did: did}
	keep, remove := r.triageImages()
	released, err := r.removeImages(remove)
	if err != nil {
		return err
	}
	claims, sizes, err := r.reclaim(keep)
	if err != nil {
		return err
	}
	if err := r.dropHolds(claims, released); err != nil {
		return err
	}
	if err := r.holdClaimed(claims, sizes); err != nil {
		return err
	}
	return r.correctHolds(claims)
}

// nsRepair is what the steps of repairNamespace share: the namespace's
// buckets and the repair's view of the files.
type nsRepair struct {
	db                    *DB
	tx                    *bolt.Tx
	ns                    string
	nsb, images, data, bb *bolt.Bucket // the namespace, its images/, imagedata/ and blobs/
	available             func(digest.Digest) (int64, string)
	did                   func(string, ...any)
}

// repairImage is an image record that decodes.
type repairImage struct {
	ref string
	rec imageRecord
}

// doomedImage is an image the repair removes, and why.
type doomedImage struct {
	ref, why string
}

// triageImages sorts the namespace's images into those that stay and
// those that need a blob that is gone (or whose record or imagedata is).
func (r *nsRepair) triageImages() (keep []repairImage, remove []doomedImage) {
	_ = r.images.ForEach(func(k, v []byte) error {
		ref := string(k)
		if v == nil {
			return nil // a bucket where a record should be: a human's job
		}
		rec, err := decodeImageRecord(v)
		if err != nil {
			remove = append(remove, doomedImage{ref, "its record is malformed"})
			return nil
		}
		idb := r.data.Bucket(encodeUint64(rec.id))
		if idb == nil {
			remove = append(remove, doomedImage{ref, fmt.Sprintf("its imagedata/%d is missing", rec.id)})
			return nil
		}
		need := append([]digest.Digest{rec.target.Digest}, claimSet(idb)...)
		for i, d := range need {
			if _, why := r.available(d); why != "" {
				what := "blob " + string(d) + " it claims"
				if i == 0 {
					what = "its target blob " + string(d)
				}
				remove = append(remove, doomedImage{ref, what + " " + why})
				return nil
			}
		}
		keep = append(keep, repairImage{ref, rec})
		return nil
	})
	return keep, remove
}

// removeImages removes the images and their imagedata. What they claimed
// is released as rm of an image releases it: the namespace then drops
// what no remaining image claims (dropHolds).
func (r *nsRepair) removeImages(remove []doomedImage) (map[digest.Digest]bool, error) {
	released := map[digest.Digest]bool{}
	for _, img := range remove {
		if v := r.images.Get([]byte(img.ref)); v != nil {
			if rec, err := decodeImageRecord(v); err == nil && r.data.Bucket(encodeUint64(rec.id)) != nil {
				for _, d := range claimSet(r.data.Bucket(encodeUint64(rec.id))) {
					released[d] = true
				}
				if err := clearMissing(r.tx, r.ns, r.data.Bucket(encodeUint64(rec.id)), rec.id); err != nil {
					return nil, err
				}
				if err := r.data.DeleteBucket(encodeUint64(rec.id)); err != nil {
					return nil, err
				}
			}
		}
		if err := r.images.Delete([]byte(img.ref)); err != nil {
			return nil, err
		}
		r.did("removed image %q of namespace %q: %s", shorten(img.ref), r.ns, img.why)
	}
	return released, nil
}

// reclaim rebuilds the claim sets of the images that stay (the target
// and a manifest's blobs, where they can be had), removes the imagedata
// of no image, and counts the claims of each blob and its size.
func (r *nsRepair) reclaim(keep []repairImage) (map[digest.Digest]uint64, map[digest.Digest]int64, error) {
	db, ns, data, available, did := r.db, r.ns, r.data, r.available, r.did
	owned := map[uint64]bool{}
	claims := map[digest.Digest]uint64{}
	sizes := map[digest.Digest]int64{}
	for _, img := range keep {
		owned[img.rec.id] = true
		idb := data.Bucket(encodeUint64(img.rec.id))
		cb := claimsOf(idb)
		want := []digest.Digest{img.rec.target.Digest}
		if pm, err := db.parseBlob(img.rec.target.Digest); err == nil && !pm.IsIndex() {
			for _, r := range pm.Children {
				if _, why := available(r.Digest); !r.Foreign && why == "" {
					want = append(want, r.Digest)
				}
			}
		}
		for _, d := range want {
			if err := r.noLongerMissing(idb, img.rec.id, d); err != nil {
				return nil, nil, err
			}
			if !cb.has([]byte(d)) {
				if err := cb.Put([]byte(d), member); err != nil {
					return nil, nil, err
				}
				did("image %q of namespace %q claims blob %s again", shorten(img.ref), ns, d)
			}
		}
		for _, d := range claimSet(idb) {
			claims[d]++
			sizes[d], _ = available(d)
		}
	}
	return claims, sizes, r.removeOrphanData(owned)
}

// noLongerMissing takes d out of what image id (idb) misses, now that it
// claims it.
func (r *nsRepair) noLongerMissing(idb *bolt.Bucket, id uint64, d digest.Digest) error {
	mb := missingOf(idb)
	if mb.Get([]byte(d)) == nil {
		return nil
	}
	if err := mb.Delete([]byte(d)); err != nil {
		return err
	}
	return unwant(r.tx, r.ns, d, id)
}

// removeOrphanData removes the imagedata buckets no image owns.
func (r *nsRepair) removeOrphanData(owned map[uint64]bool) error {
	var orphanData [][]byte
	_ = r.data.ForEach(func(k, _ []byte) error {
		if len(k) != 8 || !owned[decodeUint64(k)] {
			orphanData = append(orphanData, append([]byte(nil), k...))
		}
		return nil
	})
	for _, k := range orphanData {
		if r.data.Bucket(k) == nil {
			continue
		}
		if err := r.data.DeleteBucket(k); err != nil {
			return err
		}
		r.did("removed imagedata/%d of namespace %q: it belonged to no image", decodeUint64(k), r.ns)
	}
	return nil
}

// dropHolds drops the holds of blobs whose file is gone, and of blobs
// only removed images claimed.
func (r *nsRepair) dropHolds(claims map[digest.Digest]uint64, released map[digest.Digest]bool) error {
	var holds []digest.Digest
	_ = r.bb.ForEachBucket(func(k []byte) error {
		holds = append(holds, digest.Digest(k))
		return nil
	})
	for _, d := range holds {
		_, why := r.available(d)
		switch _, claimed := claims[d]; {
		case why != "":
			why = "its file " + why
		case released[d] && !claimed:
			why = "only removed images claimed it"
		default:
			continue
		}
		if err := r.bb.DeleteBucket([]byte(d)); err != nil {
			return err
		}
		r.did("namespace %q dropped blob %s: %s", r.ns, d, why)
	}
	return nil
}

// holdClaimed makes the namespace hold every blob an image claims, with
// the count of the images that claim it.
func (r *nsRepair) holdClaimed(claims map[digest.Digest]uint64, sizes map[digest.Digest]int64) error {
	t := now()
	for _, d := range slices.Sorted(maps.Keys(claims)) {
		n := claims[d]
		rec := r.bb.Bucket([]byte(d))
		if rec == nil {
			var err error
			if rec, err = hold(r.tx, r.nsb, r.ns, d, sizes[d], t); err != nil {
				return err
			}
			r.did("namespace %q holds blob %s again: an image claims it", r.ns, d)
		}
		if got := getUint64(rec, keyImages); got != n {
			if err := putUint64(rec, keyImages, n); err != nil {
				return err
			}
			r.did("namespace %q: blob %s is claimed by %d image(s), not %d: count corrected", r.ns, d, n, got)
		}
	}
	return nil
}

// correctHolds gives the holds no image claims a count of 0, and every
// hold its blob's size.
func (r *nsRepair) correctHolds(claims map[digest.Digest]uint64) error {
	ns, bb, did := r.ns, r.bb, r.did
	return bb.ForEachBucket(func(k []byte) error {
		d := digest.Digest(k)
		rec := bb.Bucket(k)
		if _, claimed := claims[d]; !claimed && getUint64(rec, keyImages) != 0 {
			did("namespace %q: blob %s is claimed by no image, not %d: count corrected", ns, d, getUint64(rec, keyImages))
			if err := putUint64(rec, keyImages, 0); err != nil {
				return err
			}
		}
		if size, _ := r.available(d); getInt64(rec, keySize) != size {
			did("namespace %q: blob %s is %d bytes, not %d: size corrected", ns, d, size, getInt64(rec, keySize))
			return putInt64(rec, keySize, size)
		}
		return nil
	})
}

// repairContent makes content records agree with the holds: records of
// gone blobs go, holder entries follow the holds, a hold gets its record,
// a record without holders goes (its file, no record naming it now, is
// then adopted into lostFoundNamespace).
func repairContent(tx *bolt.Tx, available func(digest.Digest) (int64, string), did func(string, ...any)) error {
	holders := holdersByBlob(namespacesBucket(tx))
	content := contentBucket(tx)
	if err := pruneContentRecords(content, holders, available, did); err != nil {
		return err
	}
	return recordHeldBlobs(content, holders, available, did)
}

// holdersByBlob is, for every blob a namespace holds, the namespaces
// that hold it.
func holdersByBlob(all namespaceSet) map[digest.Digest]map[string]bool {
	holders := map[digest.Digest]map[string]bool{}
	_ = all.ForEachBucket(func(name []byte) error {
		if bb := nsSub(all.Bucket(name), bucketBlobs); bb != nil {
			_ = bb.ForEachBucket(func(k []byte) error {
				d := digest.Digest(k)
				if holders[d] == nil {
					holders[d] = map[string]bool{}
				}
				holders[d][string(name)] = true
				return nil
			})
		}
		return nil
	})
	return holders
}

// pruneContentRecords removes the records of gone or unheld blobs, and
// corrects the size and holder entries of the others.
func pruneContentRecords(content *bolt.Bucket, holders map[digest.Digest]map[string]bool, available func(digest.Digest) (int64, string), did func(string, ...any)) error {
	var records []digest.Digest
	_ = content.ForEachBucket(func(k []byte) error {
		records = append(records, digest.Digest(k))
		return nil
	})
	for _, d := range records {
		size, why := available(d)
		if why == "" && len(holders[d]) == 0 {
			why = "no namespace holds it"
		} else if why != "" {
			why = "its file " + blobs.RelPath(d) + " " + why
		}
		if why != "" {
			if err := content.DeleteBucket([]byte(d)); err != nil {
				return err
			}
			did("removed the record of blob %s: %s", d, why)
			continue
		}
		cb := content.Bucket([]byte(d))
		if getInt64(cb, keySize) != size {
			did("blob %s is %d bytes, not %d: size corrected", d, size, getInt64(cb, keySize))
			if err := putInt64(cb, keySize, size); err != nil {
				return err
			}
		}
		if err := dropStaleHolders(cb, d, holders[d], did); err != nil {
			return err
		}
	}
	return nil
}

// dropStaleHolders removes the holder entries of blob d's record (cb)
// that name a namespace not among those holding it.
func dropStaleHolders(cb *bolt.Bucket, d digest.Digest, holding map[string]bool, did func(string, ...any)) error {
	hb := holdersOf(cb)
	var stale [][]byte
	_ = hb.ForEach(func(ns, _ []byte) error {
		if !holding[string(ns)] {
			stale = append(stale, append([]byte(nil), ns...))
		}
		return nil
	})
	for _, ns := range stale {
		if err := hb.Delete(ns); err != nil {
			return err
		}
		did("blob %s: removed holder namespace %q, which does not hold it", d, ns)
	}
	return nil
}

// recordHeldBlobs gives every held blob its record (its file is there:
// a hold of a gone blob was dropped before) naming all its holders.
func recordHeldBlobs(content *bolt.Bucket, holders map[digest.Digest]map[string]bool, available func(digest.Digest) (int64, string), did func(string, ...any)) error {
	t := now()
	for _, d := range slices.Sorted(maps.Keys(holders)) {
		nss := holders[d]
		cb := content.Bucket([]byte(d))
		if cb == nil {
			size, _ := available(d)
			var err error
			if cb, err = content.CreateBucket([]byte(d)); err != nil {
				return err
			}
			if err := putInt64(cb, keySize, size); err != nil {
				return err
			}
			if err := putTime(cb, keyCreatedAt, t); err != nil {
				return err
			}
			did("blob %s: recorded again, namespaces hold it and its file is there", d)
		}
		hb := holdersOf(cb)
		names := make([]string, 0, len(nss))
		for ns := range nss {
			names = append(names, ns)
		}
		sort.Strings(names)
		for _, ns := range names {
			if !hb.has([]byte(ns)) {
				if err := hb.Put([]byte(ns), member); err != nil {
					return err
				}
				did("blob %s: namespace %q is named as a holder again", d, ns)
			}
		}
	}
	return nil
}

// parseBlob reads and parses a manifest or index blob.
func (db *DB) parseBlob(d digest.Digest) (imagegraph.Document, error) {
	data, err := db.readSmallBlob(d)
	if err != nil {
		return imagegraph.Document{}, err
	}
	return imagegraph.Parse(data)
}
