package metadata

import (
	"fmt"
	"os"
	"runtime/debug"
	"sort"
	"strings"

	"github.com/nsfs/nsfs/blobs"
	"github.com/nsfs/nsfs/imagegraph"
	"github.com/nsfs/nsfs/names"
	"github.com/opencontainers/go-digest"
	"github.com/pkg/errors"
	bolt "go.etcd.io/bbolt"
)

// lostFoundNamespace is where nsfs fsck --repair puts the blob files no
// record names: kept, held, and visible in ns/lost-found/blobs/sha256/.
const lostFoundNamespace = "lost-found"

// checkMetaFile refuses a meta.db that bbolt would silently make anew: a
// missing or empty file beside blob files means the records of those
// blobs are lost, and a new store would treat them as nobody's. A new,
// empty root is fine.
func checkMetaFile(root, dbpath string, readOnly bool) error {
	fi, err := os.Lstat(dbpath)
	switch {
	case err == nil && !fi.Mode().IsRegular():
		return damaged(root, "meta.db is %s, not a regular file", blobs.KindOf(fi.Mode()))
	case err == nil && fi.Size() > 0:
		return nil
	case err != nil && !errors.Is(err, os.ErrNotExist):
		return errors.WithMessagef(err, "open store %s", root)
	}
	what := "missing"
	if err == nil {
		what = "empty"
	}
	n, err := blobs.CountBlobEntries(root, 1024)
	if err != nil {
		return damaged(root, "meta.db is %s, and %v", what, err)
	}
	switch {
	case n > 0:
		return damaged(root, "meta.db is %s, but blobs/sha256 holds %s: their records are lost", what, plural(n, "file"))
	case readOnly && what == "missing":
		return errors.Errorf("no nsfs store at %s (no meta.db)", root)
	case readOnly:
		return damaged(root, "meta.db is empty")
	}
	return nil
}

// openBolt opens meta.db so that a damaged file is refused before bbolt
// reads it: a panic inside bolt.Open would leave the file's lock held, and
// bbolt's readers trust the file. The page tree is read and checked first
// (checkPageTree: by reads, not through the memory map, so that checking a
// large store does not map all of it into the daemon), and only a sound
// file is opened for writing (after a read-only open, which takes the
// lock shared and says whether another process has it). Panics and
// faults that remain become ErrDamaged. bbolt's own page check (pages
// neither used nor free) runs in nsfs fsck.
func openBolt(root, dbpath string, opts *bolt.Options) (bdb *bolt.DB, err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			if bdb != nil {
				bdb.Close()
			}
			bdb, err = nil, damaged(root, "meta.db is unreadable (%v)", r)
		}
	}()
	if fi, err := os.Stat(dbpath); err != nil || fi.Size() == 0 {
		// A new store (checkMetaFile allowed it): bbolt writes it now.
		return openRW(root, dbpath, opts)
	}
	// The lock first (shared: a read-only open reads only the meta
	// pages), so that no daemon is writing while the pages are checked.
	roOpts := *opts
	roOpts.ReadOnly = true
	bdb, err = bolt.Open(dbpath, 0o600, &roOpts)
	if err != nil {
		if errors.Is(err, bolt.ErrTimeout) {
			return nil, errors.WithMessagef(ErrLocked, "store %s is already in use by another nsfs (%s is locked)", root, dbpath)
		}
		return nil, damaged(root, "meta.db is unreadable (%v)", err)
	}
	if err := checkPageTree(dbpath); err != nil {
		bdb.Close()
		return nil, damaged(root, "meta.db %v", err)
	}
	if opts.ReadOnly {
		return bdb, nil
	}
	if err := bdb.Close(); err != nil {
		return nil, errors.WithMessagef(err, "open store %s", root)
	}
	return openRW(root, dbpath, opts)
}

// openRW is bolt.Open with nsfs's errors.
func openRW(root, dbpath string, opts *bolt.Options) (*bolt.DB, error) {
	bdb, err := bolt.Open(dbpath, 0o600, opts)
	if err != nil {
		if errors.Is(err, bolt.ErrTimeout) {
			return nil, errors.WithMessagef(ErrLocked, "store %s is already in use by another nsfs (%s is locked)", root, dbpath)
		}
		return nil, damaged(root, "meta.db is unreadable (%v)", err)
	}
	return bdb, nil
}

// checkPageTree reads meta.db's pages itself (rawFile) before bbolt does:
// the meta pages, then every page the tree reaches, once each. A
// truncated file, a page number out of the file, a page reached twice (a
// cycle would loop bbolt's cursors and its check forever), a page that is
// not what its parent says, or elements that run past their page: any of
// them is refused here, and bbolt's own check then finds the rest.
func checkPageTree(dbpath string) error {
	raw, err := openRawFile(dbpath)
	if err != nil {
		return err
	}
	defer raw.Close()
	var problems []string
	raw.walk(func([][]byte, []byte, []byte, bool, uint64) {}, func(p string) {
		if len(problems) < 3 {
			problems = append(problems, p)
		}
	})
	if len(problems) > 0 {
		return errors.Errorf("has damaged pages: %s", strings.Join(problems, "; "))
	}
	return nil
}

// damaged is an ErrDamaged for the store at root, with the remedy.
func damaged(root, format string, args ...any) error {
	return errors.WithMessagef(ErrDamaged, "store %s: %s; nothing was changed (run \"nsfs fsck --root %s\" for a report, then \"nsfs fsck --repair --root %s\" to salvage what is readable)",
		root, fmt.Sprintf(format, args...), root, root)
}

// storeEntries is what the blob and ingest directories hold, as the mount
// and fsck judge it.
type storeEntries struct {
	files    map[digest.Digest]int64 // regular blob files named by a digest, and their sizes
	ingests  []blobs.IngestInfo      // regular ingest files, by name
	strays   []blobs.Entry           // anything else, by path: never followed, read or deleted
	problems []Problem               // one per stray
	// badReserve is the type of what is planted at <root>/reserve, if
	// that is not a regular file (0: nothing planted).
	badReserve os.FileMode
}

// walkStore lists the blob and ingest directories, whatever their entries
// are (lstat: a link is a link), and looks at the reserve.
func (db *DB) walkStore() (storeEntries, error) {
	listed, err := db.blobs.List()
	found := storeEntries{files: listed.Files, ingests: listed.Ingests}
	if err != nil {
		return found, err
	}
	for _, e := range listed.Strays {
		found.strays = append(found.strays, e.Entry)
		found.problems = append(found.problems, Problem{Object: e.Path, What: e.Why})
	}
	if fi, err := os.Lstat(db.reservePath()); err == nil && !fi.Mode().IsRegular() {
		found.badReserve = fi.Mode()
		found.problems = append(found.problems, Problem{Object: reserveName, What: "is " + blobs.KindOf(fi.Mode()) + " where the store keeps a file of reserved space (never followed)"})
	}
	sort.Slice(found.problems, func(i, j int) bool { return found.problems[i].Object < found.problems[j].Object })
	return found, nil
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

// Recover makes a store ready to serve after whatever stopped it last. It
// first proves that the blob directory agrees with the records: every
// content record has its file, a regular file of the recorded size; every
// blob file is named by a content record or by an unheld/ entry (the
// intents and tombstones of this store's own writes); nothing in
// blobs/sha256 or ingest/ is a link, a directory or a device. A store that
// disagrees is not touched: Recover returns ErrDamaged naming the first
// problems and what to run. Otherwise it collects the garbage of a crash
// (CollectGarbage without a grace: the caller holds the store's lock, so
// no writer is left).
func (db *DB) Recover() (GCStats, error) {
	if err := db.CheckFiles(); err != nil {
		return GCStats{}, err
	}
	return db.CollectGarbage(GCOptions{})
}

// CheckFiles is Recover's proof that the store can be served and
// collected: bbolt's page check, then the blob and ingest directories
// against the records. It changes nothing; a disagreement is ErrDamaged,
// naming the first problems and what to run.
func (db *DB) CheckFiles() error {
	// bbolt's page check ran when the store was opened (openBolt).
	problems, err := db.auditFiles()
	if err != nil {
		return err
	}
	if len(problems) == 0 {
		return nil
	}
	const shown = 3
	var first []string
	for i, p := range problems {
		if i == shown {
			break
		}
		first = append(first, p.String())
	}
	more := ""
	if len(problems) > shown {
		more = fmt.Sprintf(" (and %d more)", len(problems)-shown)
	}
	return damaged(db.root, "%s%s", strings.Join(first, "; "), more)
}

// maxPageProblems bounds how many damaged pages checkPages reports.
const maxPageProblems = 20

// checkPages is bbolt's own check of meta.db's page structure (every page
// reachable once, none both used and free, keys in order), which reads
// every page: what a zeroed or overwritten page breaks.
func (db *DB) checkPages() ([]Problem, error) {
	var problems []Problem
	err := db.view(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			if len(problems) < maxPageProblems {
				problems = append(problems, Problem{Object: "meta.db", What: strings.TrimPrefix(err.Error(), "panic: ")})
			}
		}
		return nil
	})
	if err != nil {
		problems = append(problems, Problem{Object: "meta.db", What: err.Error()})
	}
	return problems, nil
}

// auditFiles compares the blob and ingest directories with the records,
// as Recover describes, and returns what disagrees, sorted.
func (db *DB) auditFiles() ([]Problem, error) {
	found, err := db.walkStore()
	if err != nil {
		return nil, err
	}
	problems, files := found.problems, found.files
	strays := map[digest.Digest]bool{} // reported already; not "missing" too
	for _, e := range found.strays {
		strays[digest.NewDigestFromEncoded(digest.SHA256, e.Name)] = true
	}
	err = db.view(func(tx *bolt.Tx) error {
		problems = append(problems, schemaShape(tx)...)
		content := contentBucket(tx)
		if content == nil {
			return nil // schemaShape said so
		}
		if err := content.ForEachBucket(func(k []byte) error {
			d := digest.Digest(k)
			if names.ValidateDigest(d) != nil {
				problems = append(problems, Problem{Object: fmt.Sprintf("content record %q", shorten(string(k))), What: "is not named by a sha256 digest (a damaged record)"})
				return nil
			}
			size, ok := files[d]
			switch {
			case !ok && strays[d]:
			case !ok && !strays[d]:
				problems = append(problems, Problem{Object: "blob " + string(d), What: "its file " + blobs.RelPath(d) + " is missing"})
			case size != getInt64(content.Bucket(k), keySize):
				problems = append(problems, Problem{Object: "blob file " + blobs.RelPath(d), What: fmt.Sprintf("has %d bytes, its record says %d", size, getInt64(content.Bucket(k), keySize))})
			}
			delete(files, d)
			return nil
		}); err != nil {
			return err
		}
		unheld := unheldBucket(tx)
		for d := range files {
			if unheld == nil || unheld.Get([]byte(d)) == nil {
				problems = append(problems, Problem{Object: "blob file " + blobs.RelPath(d), What: "no record names it (its record is lost, or it was put there by hand)"})
			}
		}
		return nil
	})
	if err != nil {
		return nil, damaged(db.root, "meta.db is unreadable (%v)", err)
	}
	sort.Slice(problems, func(i, j int) bool { return problems[i].String() < problems[j].String() })
	return problems, nil
}

// schemaShape checks what every request relies on being there (doc.go's
// tree): the top buckets, and each namespace's ID and sub-buckets. A bit
// flipped in one of their names passes bbolt's page check, but would make
// requests fail; the mount refuses it instead.
func schemaShape(tx *bolt.Tx) []Problem {
	v1 := root(tx)
	if v1 == nil {
		return []Problem{{Object: "meta.db", What: "has no v1/ bucket"}}
	}
	var problems []Problem
	if v1.Bucket(bucketContent) == nil {
		problems = append(problems, Problem{Object: "meta.db", What: fmt.Sprintf("has no v1/%s/ bucket", bucketContent)})
	}
	all := namespacesBucket(tx)
	if idsBucket(tx) == nil {
		problems = append(problems, Problem{Object: "meta.db", What: fmt.Sprintf("has no %s/ bucket (the ID sequence)", bucketNSDir)})
	}
	if !legacyLayout(tx) && tx.Bucket(noData) == nil {
		problems = append(problems, Problem{Object: "meta.db", What: "has no nsdata/0/ bucket (the data of a namespace that has none yet)"})
	}
	// IDs are inode numbers in fs/: two objects with one would be one
	// file to the kernel, and a delete of one would take the other's
	// imagedata.
	ids := map[uint64]struct{}{}
	useID := func(obj string, id uint64) {
		if _, dup := ids[id]; dup {
			problems = append(problems, Problem{Object: obj, What: fmt.Sprintf("has ID %d, which another namespace or image has too", id)})
		}
		ids[id] = struct{}{}
	}
	owners := map[uint64]bool{}
	_ = all.ForEach(func(name, v []byte) error {
		obj := fmt.Sprintf("namespace record %q", shorten(string(name)))
		nsb := all.Bucket(name)
		if v != nil || nsb == nil {
			problems = append(problems, Problem{Object: obj, What: "is a key, not a bucket"})
			return nil
		}
		if id := nsb.Get(keyID); len(id) != 8 || decodeUint64(id) == 0 {
			problems = append(problems, Problem{Object: obj, What: "has no ID"})
		} else {
			useID(obj, getUint64(nsb, keyID))
			owners[getUint64(nsb, keyID)] = true
		}
		if images := nsSub(nsb, bucketImages); images != nil {
			_ = images.ForEach(func(ref, rec []byte) error {
				obj := fmt.Sprintf("image record %q of namespace %q", shorten(string(ref)), shorten(string(name)))
				r, err := decodeImageRecord(rec)
				switch {
				case rec == nil:
				case err != nil:
					problems = append(problems, Problem{Object: obj, What: "does not decode: " + err.Error()})
				case names.ValidateDigest(r.target.Digest) != nil:
					problems = append(problems, Problem{Object: obj, What: fmt.Sprintf("has an invalid target digest %q", shorten(string(r.target.Digest)))})
				case !imagegraph.IsDocument(r.target.MediaType):
					problems = append(problems, Problem{Object: obj, What: fmt.Sprintf("has a target media type %q that is no manifest's or index's", shorten(r.target.MediaType))})
				default:
					useID(obj, r.id)
				}
				return nil
			})
		}
		for _, sub := range [][]byte{bucketImages, bucketImageData, bucketDirs, bucketBlobs} {
			if nsSub(nsb, sub) == nil {
				problems = append(problems, Problem{Object: obj, What: fmt.Sprintf("has no %s/ bucket", sub)})
			}
		}
		return nil
	})
	// A record whose ID changed would read as empty, its data stranded.
	for _, id := range orphanData(tx, owners) {
		problems = append(problems, Problem{Object: fmt.Sprintf("data bucket nsdata/%d", id), What: fmt.Sprintf("belongs to no namespace (no record has ID %d)", id)})
	}
	return problems
}

// view is bolt's View for a store that may be damaged (guarded).
func (db *DB) view(fn func(*bolt.Tx) error) error {
	return guarded(func() error { return db.bolt.View(fn) })
}

// guarded runs fn, turning a panic or a memory fault (bbolt reading a
// zeroed or truncated page of a damaged meta.db) into an error naming it.
func guarded(fn func() error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = errors.WithMessagef(errCorrupt, "reading meta.db failed: %v", r)
		}
	}()
	return fn()
}
