package fs

import (
	"encoding/binary"
	"hash/fnv"
	"sync"

	"github.com/opencontainers/go-digest"
)

// Inode numbers. The kernel identifies a file by (nodeid, generation) and
// go-fuse reuses an Inode (and so its nodeid) for a lookup that returns a
// StableAttr it already knows, so every number below names one object for
// as long as it exists:
//
//	1                    the root (Options.RootStableAttr)
//	2                    ns/
//	2 + Namespace.ID     ns/<name>           (bbolt sequence from 1, never reused)
//	2 + Image.ID         an image file        (kept by replace and rename;
//	                     reserved at create, before the first commit)
//	1<<62 + n            directories that are not records (images/, blobs/,
//	                     blobs/sha256, ref prefixes): an in-memory counter
//	1<<63 | FNV-64a(...) a blob file, derived from namespace and digest
//
// Gen is 1 everywhere: numbers are never reused for another object, except
// a directory's after a successful rmdir, which is why the table forgets it
// then (see inodeTable.forget).
const (
	rootIno       = 1
	recordBase    = 2 // IDs start at 1, like our own numbers: shift them past ns/
	namespacesIno = 2
	firstTableIno = 1 << 62
	blobInoBit    = 1 << 63
	generation    = 1
)

// recordIno is the inode number of a namespace or image with database ID
// id. The IDs come from one bbolt sequence starting at 1; unshifted,
// ns/default would have the root's number, and find, du and rm -r would
// see a directory loop.
func recordIno(id uint64) uint64 { return recordBase + id }

// dirKey names a directory that is not a database record: a path inside a
// namespace ("images", "images/docker.io/library", "blobs",
// "blobs/sha256").
type dirKey struct {
	ns   uint64
	path string
}

// inodeTable hands out numbers for directories that have none in the
// database, the same number for the same directory until it is removed.
type inodeTable struct {
	mu   sync.Mutex
	next uint64
	dirs map[dirKey]uint64
}

func newInodeTable() *inodeTable {
	return &inodeTable{next: firstTableIno, dirs: make(map[dirKey]uint64)}
}

// dir returns the number of directory path of namespace ns.
func (t *inodeTable) dir(ns uint64, path string) uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	k := dirKey{ns, path}
	ino, ok := t.dirs[k]
	if !ok {
		ino = t.next
		t.next++
		t.dirs[k] = ino
	}
	return ino
}

// forget drops the number of a directory that rmdir removed. After rmdir
// returns 0 the kernel marks that inode dead (S_DEAD); a later lookup that
// answered with the same number would make go-fuse hand back the same
// nodeid, the kernel would reuse the dead inode, and readdir of the
// directory recreated in its place would fail with ENOENT.
func (t *inodeTable) forget(ns uint64, paths ...string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, p := range paths {
		delete(t.dirs, dirKey{ns, p})
	}
}

// forgetNamespace drops every number of a deleted namespace (rare: a scan).
func (t *inodeTable) forgetNamespace(ns uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for k := range t.dirs {
		if k.ns == ns {
			delete(t.dirs, k)
		}
	}
}

// blobIno is the number of blob d as namespace ns sees it: derived, so it
// needs no table and stays the same across mounts.
func blobIno(ns uint64, d digest.Digest) uint64 {
	h := fnv.New64a()
	var id [8]byte
	binary.BigEndian.PutUint64(id[:], ns)
	h.Write(id[:])
	h.Write([]byte("blob"))
	h.Write([]byte(d))
	ino := blobInoBit | h.Sum64()&(blobInoBit-1)
	if ino == ^uint64(0) {
		// Reserved by go-fuse (its poll hack).
		ino--
	}
	return ino
}
