// Package metadata is the bbolt half of an nsfs store: namespaces, labels,
// images, the images/ directory tree, and which namespace holds which blob
// of the shared blob directory (package blobs). Every rule is checked inside
// the one bbolt transaction that mutates, so two concurrent callers can never
// both pass a check that only one of them may pass.
//
// Open gives a *DB, the store. Its objects are reached through one small
// store per kind, as in containerd's metadata package:
//
//	db.Namespaces()  NamespaceStore  ns/<name>: mkdir, stat, ls, rmdir
//	db.Images()      ImageStore      images/ of a namespace: the image
//	                                 files (cp, stat, rm, mv, ln) and the
//	                                 directories of their refs (ls, mkdir,
//	                                 rmdir); PendingLabels for an image
//	                                 still being written
//	db.Content()     ContentStore    blobs/sha256/ of a namespace: stat,
//	                                 ls, cat, cp in, rm, rmdir
//	db.Labels()      LabelStore      the user.* xattrs of all three
//
// What concerns the whole store stays on DB: Close, Root, Sharing (the
// mount's policy; a namespace may have its own), Check
// (nsfs fsck), Recover (at mount), CheckFiles and CollectGarbage (nsfs
// gc); Repair (nsfs fsck --repair) works on a closed store.
//
// The schema, in <root>/meta.db (keys are bytes; "->" is a key with a value,
// a name ending in "/" a bucket; "labels/<key> -> <value>" is one flat key
// per label, its name starting with "labels/"):
//
//	nsdir/                              the directory ns/ (no nested bucket:
//	                                    inline in the top page, the page of
//	                                    the top-level buckets; nstop.go)
//	  (sequence)                        the one ID counter: namespaces and
//	                                    images take IDs from it, never reused;
//	                                    ImageStore.ReserveID takes blocks of
//	                                    1024 ahead (for images fs/ creates),
//	                                    and what a block leaves unused is
//	                                    never used
//	  times -> mtime, ctime             ns/: moved when namespaces come and go
//	ns/<name>/                          a namespace's record (containerd's name
//	                                    rule): flat keys, no nested bucket, so
//	                                    inline in the top page while under
//	                                    1 KiB; a label, a mkdir or an rmdir
//	                                    commits that one page (nstop.go)
//	  id -> uint64                      fs/ inode of ns/<name>
//	  createdat -> time
//	  updatedat -> time                 bumped by label changes
//	  uid -> uint64                     the owner (tenants.go): uid, gid and
//	  gid -> uint64                     permission bits of the mkdir; a
//	  mode -> uint64                    namespace without them (written before
//	                                    owners) is root:root 0755
//	  quota -> int64                    trusted.nsfs.quota: bytes it may hold;
//	                                    no key: no quota
//	  sharing -> "shared"|"isolated"
//	                                    trusted.nsfs.sharing; no key: the
//	                                    mount's policy
//	  held -> int64                     usage counters (usage.go), kept by
//	  only -> int64                     every hold and drop: bytes of the
//	                                    blobs it holds, and of those no other
//	                                    namespace holds; counted from the
//	                                    holds at the first open of a store
//	                                    from before them
//	  labels/<key> -> <value>           flat keys, as every labels/ below
//	nsdata/<id>/                        a namespace's data, named by its ID
//	                                    (8 bytes); made by the first write that
//	                                    needs it: until then the namespace
//	                                    reads nsdata/0/, always empty
//	  images/
//	    <ref> -> image record           a ref is a clean relative path; keys
//	                                    sort bytewise, so everything below the
//	                                    directory "a/b" is the key range "a/b/..."
//	                                    record: id, createdat, updatedat, target
//	                                    {mediatype, digest, size}, then changedat
//	                                    (ctime) when later; one value, so a
//	                                    listing reads one value per entry
//	  imagedata/
//	    <id>/                           what an image has beyond its record,
//	                                    keyed by its ID: rename moves only the
//	                                    record, replace keeps both. Flat keys,
//	                                    no nested bucket (keyrange.go), so
//	                                    bbolt keeps it inline in imagedata/'s
//	                                    page while under 1 KiB: an image costs
//	                                    a few hundred bytes, not a page
//	      labels/<key> -> <value>
//	      blobs/<digest> -> ""          the claim set: the manifest itself and
//	                                    every visible blob it references
//	      missing/<digest> -> int64     a blob its manifest names that the
//	                                    namespace could not see yet, with the
//	                                    size named: claimed once visible
//	                                    (incomplete.go)
//	  dirs/
//	    <path> -> ""                    explicit directories (mkdir in images/);
//	                                    implicit ones are the prefixes of refs
//	  dirtimes/
//	    <dir> -> mtime, ctime           ".", "images", "images/<path>", "blobs",
//	                                    "blobs/sha256": moved by what is done in
//	                                    them, or set by utimes (times.go)
//	  blobs/
//	    <digest>/                       the namespace holds this blob; no
//	                                    nested bucket: inline in blobs/
//	      size -> int64
//	      createdat -> time
//	      images -> uint64              how many images of this namespace
//	                                    claim it; 0 → only the write holds it
//	      mtime, ctime -> time          its times (times.go)
//	      labels/<key> -> <value>       content labels are per namespace
//	v1/                                 what namespaces share (the name is not
//	                                    the version)
//	  version -> uint64 (3)             written when the store is created;
//	                                    a store of version 1 or 2 is migrated
//	                                    at its first writable open (migrate.go)
//	  content/
//	    <digest>/                       some namespace holds this blob; the
//	                                    record goes when the last holder does,
//	                                    and then the file leaves the disk
//	      size -> int64                 (no nested bucket: inline in content/)
//	      createdat -> time
//	      namespaces/<name> -> ""       the holders
//	  unheld/
//	    <digest> -> time                this store may have a file of the blob
//	                                    that no namespace holds: written before
//	                                    a publishing rename (the intent) and by
//	                                    the transaction that drops the last
//	                                    holder (the tombstone); gc deletes such
//	                                    a file, then the entry
//	  wanted/
//	    <digest>/<ns>/<id> -> ""        the images missing this blob: the
//	                                    index an arrival reads (incomplete.go)
//	  shareable/
//	    <digest> -> uint64              how many namespaces labelled
//	                                    containerd.io/namespace.shareable=true
//	                                    hold it (no key: none); what isolated
//	                                    sharing asks, in one keyed read
//	                                    whatever the number of holders
//	                                    (shareable.go); built at the first
//	                                    open of a store from before it
//
// bbolt fills the pages of images/ and imagedata/ to 90% before it splits
// them (fillDense), not half: refs and IDs are mostly appended. Deleted
// records free pages that later writes reuse; the file never shrinks by
// itself, and nsfs gc --compact (Compact) rewrites it without them.
//
// uint64 and int64 are 8 bytes big-endian; times are time.MarshalBinary,
// except inside an image record (imageRecord.encode: a version byte, id,
// createdat and updatedat in Unix nanoseconds, target size, then the media
// type and the digest as uvarint-length-prefixed strings).
//
// Invariants (checked by the tests after concurrent random operations):
// content/<d>/namespaces/<ns> exists exactly when the data of namespace
// <ns> has blobs/<d>; a content record has at least one holder; a namespace's held is
// the sum of the sizes of its holds, and only the sum over those whose
// content record names it alone; shareable/<d> is the
// number of namespaces labelled shareable that hold d; every digest in an
// image's claim set is held by its namespace, and none is in its missing
// set; wanted/ is exactly the union of the missing sets, and no image
// misses a blob its namespace can see with the size it names; a held
// blob's images count
// is the number of images of the namespace whose claim set names it; image
// records and imagedata buckets pair one to one by ID; no image's data, no
// hold and no namespace record has a nested bucket; every nsdata/<id>
// belongs to the namespace record with ID <id>, and nsdata/0 is empty;
// every content record
// has its file in the blob directory, and every blob file a content record
// (but for a crash, see below).
//
// Files and records: a blob file is published (fsynced, renamed into place
// by package blobs) before the transaction that records a hold commits, and
// deleted only after the transaction that dropped its last holder commits,
// and then only if no record names it again. The digest's content lock
// (DB.lockContent) is held across [publish + commit] and across [check for
// a record + delete], so an ingest of a digest can never lose its file to a
// concurrent delete of the same digest. A crash between the two steps
// leaves at worst a file no namespace holds, and an unheld/ entry that says
// this store wrote it: CollectGarbage removes the file then. A blob file
// that neither a content record nor an unheld/ entry names is never
// deleted: it was not written through this store's records (a lost or
// damaged meta.db, a file planted by hand), so the store refuses to mount
// (Recover) and nsfs fsck --repair adopts it instead.
//
// Commits: writes are grouped into shared transactions when they arrive
// together (batch.go), so concurrent writers share one fsync; a write
// returns once its group is durably committed. A commit that only frees
// space (a delete, gc) may use <root>/reserve when the disk is full
// (reserve.go); writes never do.
package metadata
