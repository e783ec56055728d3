package metadata

import (
	"encoding/binary"
	"time"

	"github.com/nsfs/nsfs/names"
	"github.com/pkg/errors"
	bolt "go.etcd.io/bbolt"
)

// Times as a filesystem keeps them: a directory's mtime and ctime move
// when an entry is added to it, removed or renamed; a label change moves
// an object's ctime only; a time set with utimes (touch, cp -p, tar -x,
// rsync -a) is the mtime shown from then on, and moves the ctime, so that
// rsync -a run twice finds every file's time as it left it and writes
// nothing the second time.
//
// Where they are kept:
//
//	nsdir/times -> times                ns/ (namespaces come and go)
//	nsdata/<ns id>/dirtimes/
//	  .            -> times             ns/<name> (set by utimes only; its
//	                                    ctime also moves with its labels,
//	                                    updatedat)
//	  images       -> times             images/
//	  images/<dir> -> times             a directory of images/
//	  blobs        -> times             blobs/ (set by utimes only)
//	  index.json   -> times             index.json: a ref removed, utimes (or a
//	                                    rename onto it); shown with its
//	                                    images' latest times when later
//	  oci-layout   -> times             oci-layout (utimes, a rename onto it)
//	  blobs/sha256 -> times             blobs/sha256/: a blob written into it
//	                                    or removed from it (rm); not what an
//	                                    image's claims add or drop, a side
//	                                    effect of a write in images/ (so that
//	                                    rsync -a run twice, whose images claim
//	                                    blobs after it set the time of
//	                                    blobs/sha256, finds it as it left it)
//	image record: updatedat is the mtime; an optional changedat after
//	  the digest is the ctime when it is later (labels, utimes)
//	hold (nsdata/<ns id>/blobs/<d>/): mtime -> time (the content
//	  record's createdat, so the same in every namespace, or set by
//	  utimes), ctime -> time (labels, utimes), when set
//
// times is 16 bytes: mtime and ctime, Unix nanoseconds, big-endian. A
// directory with no entry shows its namespace's creation time (ns/: none,
// the caller chooses), so that times are the same after a remount.

// Times are an object's modification and change times.
type Times struct {
	Modified time.Time // mtime: its entries (a directory) or its bytes changed
	Changed  time.Time // ctime: anything about it changed
}

// Directories whose times the store keeps, as DirTimes names them; an
// images/ directory is ImagesDir(path).
const (
	DirNamespace = "."            // ns/<name> itself
	DirBlobsRoot = "blobs"        // blobs/ (set by utimes only)
	DirBlobs     = "blobs/sha256" // blobs/sha256/
)

// Files of a namespace's root whose times the store keeps, as DirTimes
// names them: the OCI layout's, whose bytes the records make. A time set
// by utimes, or by the rename of a temporary file onto one, is kept.
// index.json's mtime is the latest of that, of the removal of a ref
// (refRemoved) and of its images' mtimes: a ref that comes or gets a new
// target moves it, and rsync -a, which sets the images' times back to the
// backup's, finds it as it left it when run twice. (A rename of a ref
// keeps its time: rsync renames every file it writes.)
const (
	FileLayoutIndex = "index.json"
	FileOCILayout   = "oci-layout"
)

// ImagesDir names directory path of images/ ("" for images/ itself).
func ImagesDir(path string) string {
	if path == "" {
		return "images"
	}
	return "images/" + path
}

var (
	bucketDirTimes = []byte("dirtimes")
	keyNamespaces  = []byte("ns")
	keyMtime       = []byte("mtime")
	keyCtime       = []byte("ctime")
)

func encodeTimes(t Times) []byte {
	b := binary.BigEndian.AppendUint64(nil, uint64(t.Modified.UnixNano()))
	return binary.BigEndian.AppendUint64(b, uint64(t.Changed.UnixNano()))
}

func decodeTimes(v []byte) (Times, bool) {
	if len(v) != 16 {
		return Times{}, false
	}
	return Times{
		Modified: time.Unix(0, int64(binary.BigEndian.Uint64(v))).UTC(),
		Changed:  time.Unix(0, int64(binary.BigEndian.Uint64(v[8:]))).UTC(),
	}, true
}

// putDirTimes records times of directory key in parent's dirtimes bucket.
func putDirTimes(parent *bolt.Bucket, key string, t Times) error {
	b, err := parent.CreateBucketIfNotExists(bucketDirTimes)
	if err != nil {
		return err
	}
	return b.Put([]byte(key), encodeTimes(t))
}

func getDirTimes(parent *bolt.Bucket, key string) (Times, bool) {
	b := parent.Bucket(bucketDirTimes)
	if b == nil {
		return Times{}, false
	}
	return decodeTimes(b.Get([]byte(key)))
}

// touchDir records that an entry of directory key (of namespace nsb)
// came or went at t.
func touchDir(nsb *bolt.Bucket, key string, t time.Time) error {
	return putDirTimes(nsData(nsb), key, Times{t, t})
}

// namespacesChanged records that a namespace came or went at t (ns/).
func namespacesChanged(tx *bolt.Tx, t time.Time) error {
	return putNamespacesTimes(tx, Times{t, t})
}

// imageEntryAdding records that path (a ref or a directory of images/)
// is about to be added at t, before the record that adds it is written:
// its directory changes, and so does the directory above each directory
// of path that did not exist yet (a ref below new implicit directories).
func imageEntryAdding(nsb *bolt.Bucket, path string, t time.Time) error {
	for dir := parentDir(path); ; dir = parentDir(dir) {
		existed := isDir(nsb, dir)
		if err := touchDir(nsb, ImagesDir(dir), t); err != nil {
			return err
		}
		if existed || dir == "" {
			return nil
		}
	}
}

// imageEntryRemoved records that path (a ref or a directory of images/)
// went at t: its directory changes (and stays: keepParentDir).
func imageEntryRemoved(nsb *bolt.Bucket, path string, t time.Time) error {
	return touchDir(nsb, ImagesDir(parentDir(path)), t)
}

// refRemoved records that a ref of the namespace went at t: its
// index.json changed (a ref that comes or gets a new target brings its
// own time, latestImageTimes).
func refRemoved(nsb *bolt.Bucket, t time.Time) error {
	return touchDir(nsb, FileLayoutIndex, t)
}

// imageDirAdding is imageEntryAdding for a directory made by mkdir, which
// has the times of its making (a directory of that name removed before
// left none behind).
func imageDirAdding(nsb *bolt.Bucket, dir string, t time.Time) error {
	if err := imageEntryAdding(nsb, dir, t); err != nil {
		return err
	}
	return touchDir(nsb, ImagesDir(dir), t)
}

// imageDirRemoved is imageEntryRemoved for a directory: its own times go.
func imageDirRemoved(nsb *bolt.Bucket, dir string, t time.Time) error {
	if b := nsSub(nsb, bucketDirTimes); b != nil {
		if err := b.Delete([]byte(ImagesDir(dir))); err != nil {
			return err
		}
	}
	return imageEntryRemoved(nsb, dir, t)
}

// DirTimes are the times of directory dir of namespace ns (DirNamespace,
// DirBlobs or ImagesDir(path); or of a layout file, FileLayoutIndex or
// FileOCILayout), or of ns/ when ns is "" (dir is then
// ignored; ok is false when the store has none yet, and the caller
// chooses). A namespace's directory with no times of its own has the
// namespace's creation time; ns/<name> changes with its labels too.
func (db *DB) DirTimes(ns, dir string) (t Times, ok bool, err error) {
	err = db.bolt.View(func(tx *bolt.Tx) error {
		if ns == "" {
			t, ok = namespacesTimes(tx)
			return nil
		}
		nsb, err := namespaceBucket(tx, ns)
		if err != nil {
			return err
		}
		t, ok = ownDirTimes(nsb, dir), true
		if dir == FileLayoutIndex {
			t = latestImageTimes(nsb, t)
		}
		return nil
	})
	return t, ok, err
}

// ownDirTimes are the times of directory dir of namespace nsb (DirTimes)
// as recorded, without the images index.json changes with: the
// namespace's creation when none are; ns/<name> changes with its labels
// too.
func ownDirTimes(nsb *bolt.Bucket, dir string) Times {
	created := getTime(nsb, keyCreatedAt)
	t, ok := getDirTimes(nsData(nsb), dir)
	if !ok {
		t = Times{created, created}
	}
	if dir == DirNamespace {
		if labelled := getTime(nsb, keyUpdatedAt); labelled.After(t.Changed) {
			t.Changed = labelled
		}
	}
	return t
}

// latestImageTimes is t, or the times of the namespace's most recently
// changed image when later: index.json changes with its images.
func latestImageTimes(nsb *bolt.Bucket, t Times) Times {
	images := nsSub(nsb, bucketImages)
	if images == nil {
		return t
	}
	_ = images.ForEach(func(_, v []byte) error {
		if rec, err := decodeImageRecord(v); err == nil { // else fsck's to report
			t = t.orLater(rec.times())
		}
		return nil
	})
	return t
}

// orLater is t with each time of o that is later.
func (t Times) orLater(o Times) Times {
	if o.Modified.After(t.Modified) {
		t.Modified = o.Modified
	}
	if o.Changed.After(t.Changed) {
		t.Changed = o.Changed
	}
	return t
}

// SetDirModified sets the mtime of directory dir of namespace ns (named
// as DirTimes names it; ns "" is ns/) to mtime, as utimes does; its ctime
// becomes now.
func (db *DB) SetDirModified(ns, dir string, mtime time.Time) error {
	return db.batch(func(tx *bolt.Tx) error {
		if ns == "" {
			return putNamespacesTimes(tx, Times{mtime.UTC(), now()})
		}
		nsb, err := namespaceBucket(tx, ns)
		if err != nil {
			return err
		}
		if path, below := cutImagesDir(dir); below && !isDir(nsb, path) {
			return pathError(nsb, ns, path)
		}
		return putDirTimes(nsData(nsb), dir, Times{mtime.UTC(), now()})
	})
}

// cutImagesDir is the path below images/ that dir names, and whether dir
// names a directory of images/ at all.
func cutImagesDir(dir string) (string, bool) {
	switch {
	case dir == "images":
		return "", true
	case len(dir) > len("images/") && dir[:len("images/")] == "images/":
		return dir[len("images/"):], true
	}
	return "", false
}

// SetModified sets the mtime of image o.Image, or of blob o.Blob that the
// namespace holds, to mtime, as utimes does; its ctime becomes now. A
// blob the namespace only sees (another's, under shared content) keeps
// its times: they are not this namespace's to change.
func (db *DB) SetModified(o Object, mtime time.Time) error {
	return db.batch(func(tx *bolt.Tx) error {
		nsb, err := namespaceBucket(tx, o.Namespace)
		if err != nil {
			return err
		}
		t := now()
		switch {
		case o.Image != "":
			rec, err := getImageRecord(nsb, o.Namespace, o.Image)
			if err != nil {
				return err
			}
			rec.updatedAt, rec.changedAt = mtime.UTC(), t
			return nsSub(nsb, bucketImages).Put([]byte(o.Image), rec.encode())
		case o.Blob != "":
			if err := names.ValidateDigest(o.Blob); err != nil {
				return err
			}
			hold := heldBlob(nsb, o.Blob)
			if hold == nil {
				if _, visible := db.visible(tx, o.Namespace, o.Blob); visible {
					return nil
				}
				return errors.WithMessagef(ErrNotFound, "blob %s not found in namespace %q", o.Blob, o.Namespace)
			}
			if err := putTime(hold, keyMtime, mtime.UTC()); err != nil {
				return err
			}
			return putTime(hold, keyCtime, t)
		}
		return errors.WithMessagef(ErrInvalidArgument, "set the times of %s: neither an image nor a blob", o)
	})
}

// holdTimes are the times of a blob namespace holds (its hold record rec):
// mtime from its hold or a utimes, ctime from a later utimes or label.
func holdTimes(rec *bolt.Bucket) Times {
	t := Times{Modified: getTime(rec, keyMtime), Changed: getTime(rec, keyCtime)}
	if t.Modified.IsZero() {
		t.Modified = getTime(rec, keyCreatedAt)
	}
	if t.Changed.Before(t.Modified) {
		t.Changed = t.Modified
	}
	return t
}

// imageTimes are the times of an image record.
func (r imageRecord) times() Times {
	t := Times{Modified: r.updatedAt, Changed: r.changedAt}
	if t.Changed.Before(t.Modified) {
		t.Changed = t.Modified
	}
	return t
}
