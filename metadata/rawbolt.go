package metadata

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"os"

	"github.com/pkg/errors"
)

// rawFile reads a bbolt file's pages by offset (ReadAt, never a memory
// map), to check and to salvage a damaged meta.db without bbolt's own
// readers, which trust the file: a page that names an ancestor as its
// child loops a cursor forever, and a page number past the file faults.
//
// bbolt's layout, as this reads it (little-endian, the hosts nsfs runs
// on): every page starts with a 16-byte header — id (8), flags (2: 0x01
// branch, 0x02 leaf, 0x04 meta, 0x10 freelist), count (2), overflow (4:
// how many pages follow it as its continuation). Pages 0 and 1 are meta
// pages: after the header, magic (4), version (4), page size (4), flags
// (4), the root bucket (its page, 8; sequence, 8), the freelist's page
// (8), the high-water mark in pages (8), txid (8), and an FNV-64a checksum
// (8) of what precedes it. A branch page holds count elements of 16 bytes
// (key position, key size, child page); a leaf page count elements of 16
// bytes (flags, key position, key size, value size), positions counted
// from the element. A leaf element with flag 0x01 is a bucket: its value
// is the bucket's root page and sequence (8 each), then, when the root is
// 0, the bucket's own leaf page inline.
type rawFile struct {
	f        *os.File
	size     int64
	pageSize int64
	pages    uint64 // the high-water mark: pages at or above it are not in use
	root     uint64 // the root bucket's page
	freelist uint64 // the freelist's page (noFreelist: none kept)
}

const (
	rawHeaderSize  = 16
	rawElementSize = 16
	rawBranchPage  = 0x01
	rawLeafPage    = 0x02
	rawFreelist    = 0x10
	rawBucketFlag  = 0x01
	rawMagic       = 0xED0CDAED
	noFreelist     = ^uint64(0)
	maxRawDepth    = 64 // deeper than any tree of a real store
)

// openRawFile reads the newest valid meta page of the bbolt file at path
// and checks that the file holds the pages it counts (a truncated file
// does not).
func openRawFile(path string) (*rawFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	r := &rawFile{f: f, size: fi.Size(), pageSize: 4096}
	var best struct {
		ok   bool
		txid uint64
	}
	for i := int64(0); i < 2; i++ {
		buf := make([]byte, rawHeaderSize+64)
		if _, err := f.ReadAt(buf, i*r.pageSize); err != nil {
			continue
		}
		meta := buf[rawHeaderSize:]
		if binary.LittleEndian.Uint32(meta[0:]) != rawMagic {
			continue
		}
		h := fnv.New64a()
		h.Write(meta[:56])
		if h.Sum64() != binary.LittleEndian.Uint64(meta[56:]) {
			continue
		}
		if i == 0 {
			r.pageSize = int64(binary.LittleEndian.Uint32(meta[8:]))
		}
		if txid := binary.LittleEndian.Uint64(meta[48:]); !best.ok || txid > best.txid {
			best.ok, best.txid = true, txid
			r.root = binary.LittleEndian.Uint64(meta[16:])
			r.freelist = binary.LittleEndian.Uint64(meta[32:])
			r.pages = binary.LittleEndian.Uint64(meta[40:])
		}
	}
	switch {
	case !best.ok:
		f.Close()
		return nil, errors.New("has no valid meta page (not a bbolt file, or both meta pages are damaged)")
	case r.pageSize < 1024 || r.pageSize > 1<<20:
		f.Close()
		return nil, errors.Errorf("has a page size of %d bytes", r.pageSize)
	case r.pages > uint64(r.size/r.pageSize):
		f.Close()
		return nil, errors.Errorf("is truncated: its pages reach byte %d, but the file has %d bytes", r.pages*uint64(r.pageSize), r.size)
	}
	return r, nil
}

func (r *rawFile) Close() error { return r.f.Close() }

// page reads page id with its overflow pages, checking that it is in use
// (below the high-water mark) and that its header names it.
func (r *rawFile) page(id uint64) ([]byte, error) {
	if id < 2 || id >= r.pages {
		return nil, errors.Errorf("page %d: out of the %d pages in use", id, r.pages)
	}
	head := make([]byte, rawHeaderSize)
	if _, err := r.f.ReadAt(head, int64(id)*r.pageSize); err != nil {
		return nil, errors.Errorf("page %d: %v", id, err)
	}
	if got := binary.LittleEndian.Uint64(head); got != id {
		return nil, errors.Errorf("page %d: its header says page %d", id, got)
	}
	overflow := uint64(binary.LittleEndian.Uint32(head[12:]))
	if id+overflow >= r.pages {
		return nil, errors.Errorf("page %d: %d overflow pages run past the %d pages in use", id, overflow, r.pages)
	}
	buf := make([]byte, int64(1+overflow)*r.pageSize)
	if _, err := r.f.ReadAt(buf, int64(id)*r.pageSize); err != nil {
		return nil, errors.Errorf("page %d: %v", id, err)
	}
	return buf, nil
}

// rawVisit is called for every key the walk finds: bucket is true for a
// bucket, whose sequence is then seq (and value nil). path names the
// buckets above the key; neither it nor key nor value may be kept.
type rawVisit func(path [][]byte, key, value []byte, bucket bool, seq uint64)

// walk visits every key of the tree depth first, each page once: a page
// reached a second time (a cycle, or two parents) is reported through bad
// and not entered again, and so is any page that is out of place or whose
// elements run past it. The walk goes on past every problem.
func (r *rawFile) walk(visit rawVisit, bad func(string)) {
	w := rawWalk{r: r, seen: map[uint64]bool{}, visit: visit, bad: bad}
	w.enter(0)
	w.tree(nil, r.root, 0, nil, nil)
	if r.freelist == noFreelist {
		return
	}
	// A page in use that the freelist calls free would be handed out by
	// the next write and overwritten: the worst damage of all, and one
	// bbolt's check does not see on a read-only open.
	buf, err := r.page(r.freelist)
	if err != nil {
		bad("freelist: " + err.Error())
		return
	}
	if flags := binary.LittleEndian.Uint16(buf[8:]); flags != rawFreelist {
		bad(fmt.Sprintf("freelist: page %d has flags %#x, not a freelist's", r.freelist, flags))
		return
	}
	count, ids := uint64(binary.LittleEndian.Uint16(buf[10:])), buf[rawHeaderSize:]
	if count == 0xFFFF { // the count did not fit: it is the first id
		if len(ids) < 8 {
			bad(fmt.Sprintf("freelist: page %d is cut short", r.freelist))
			return
		}
		count, ids = binary.LittleEndian.Uint64(ids), ids[8:]
	}
	if count > uint64(len(ids)/8) {
		bad(fmt.Sprintf("freelist: page %d counts %d free pages, more than it holds", r.freelist, count))
		return
	}
	for i := uint64(0); i < count; i++ {
		id := binary.LittleEndian.Uint64(ids[8*i:])
		switch {
		case id < 2 || id >= r.pages:
			bad(fmt.Sprintf("freelist: page %d is out of the %d pages in use", id, r.pages))
			return
		case w.seen[id]:
			bad(fmt.Sprintf("freelist: page %d is in use, but listed as free", id))
			return
		}
	}
}

type rawWalk struct {
	r    *rawFile
	seen map[uint64]bool
	// last[n] is the last key seen in the bucket n levels deep that is
	// being walked: a depth-first walk meets a bucket's keys in order, and
	// walks a nested bucket whole before it goes on with its parent's.
	// bbolt's searches rely on the order; a damaged key out of order
	// sends a write to the wrong page.
	last  [][]byte
	visit rawVisit
	bad   func(string)
}

// inOrder reports whether key comes after the last key of its bucket,
// and remembers it.
func (w *rawWalk) inOrder(depth int, key []byte, where string) bool {
	for len(w.last) <= depth {
		w.last = append(w.last, nil)
	}
	if last := w.last[depth]; last != nil && bytes.Compare(key, last) <= 0 {
		w.bad(fmt.Sprintf("%s: key %q is out of order after %q", where, key, last))
		return false
	}
	w.last[depth] = append(w.last[depth][:0], key...)
	return true
}

// enter starts the walk of a bucket depth levels deep: its keys are
// compared among themselves only.
func (w *rawWalk) enter(depth int) {
	for len(w.last) <= depth {
		w.last = append(w.last, nil)
	}
	w.last[depth] = nil
}

// tree walks the page id and what it leads to. Its keys must lie in [lo,
// hi) (nil: no bound), the range its parent branch gives it: bbolt checks
// that when it rebuilds the free page list at open (a store written
// without one), and panics on the first key out of place. It returns the
// last key below the page.
func (w *rawWalk) tree(path [][]byte, id uint64, depth int, lo, hi []byte) []byte {
	switch {
	case depth > maxRawDepth:
		w.bad(fmt.Sprintf("page %d: more than %d levels deep", id, maxRawDepth))
		return nil
	case w.seen[id]:
		w.bad(fmt.Sprintf("page %d: reached twice (a cycle, or two parents)", id))
		return nil
	}
	w.seen[id] = true
	buf, err := w.r.page(id)
	if err != nil {
		w.bad(err.Error())
		return nil
	}
	return w.elements(path, fmt.Sprintf("page %d", id), buf, depth, lo, hi)
}

// inRange reports whether the i-th key of a page, after prev (the last
// key before it on the page or below its previous branch), lies in [lo,
// hi), as bbolt's page check wants.
func (w *rawWalk) inRange(where string, i int, key, prev, lo, hi []byte) bool {
	switch {
	case i == 0 && lo != nil && bytes.Compare(key, lo) < 0:
		w.bad(fmt.Sprintf("%s: first key %q comes before its parent branch's %q", where, key, lo))
		return false
	case i > 0 && prev != nil && bytes.Compare(key, prev) <= 0:
		w.bad(fmt.Sprintf("%s: key %q is out of order after %q", where, key, prev))
		return false
	case hi != nil && bytes.Compare(key, hi) >= 0:
		w.bad(fmt.Sprintf("%s: key %q is not before its parent branch's next key %q", where, key, hi))
		return false
	}
	return true
}

// branchKey is the key of element i of branch page buf, nil when it runs
// past the page.
func branchKey(buf []byte, i int) []byte {
	el := rawHeaderSize + rawElementSize*i
	if el+rawElementSize > len(buf) {
		return nil
	}
	pos, ksize := uint64(binary.LittleEndian.Uint32(buf[el:])), uint64(binary.LittleEndian.Uint32(buf[el+4:]))
	if k := uint64(el) + pos; k+ksize <= uint64(len(buf)) {
		return buf[k : k+ksize]
	}
	return nil
}

// elements walks the elements of one page, or of a bucket's page inline
// in its parent's value; where names it in problems. Its keys must lie in
// [lo, hi) (tree); it returns the last one below it.
func (w *rawWalk) elements(path [][]byte, where string, buf []byte, depth int, lo, hi []byte) (last []byte) {
	if len(buf) < rawHeaderSize {
		w.bad(fmt.Sprintf("%s: shorter than a page header", where))
		return nil
	}
	flags, count := binary.LittleEndian.Uint16(buf[8:]), int(binary.LittleEndian.Uint16(buf[10:]))
	if flags != rawBranchPage && flags != rawLeafPage {
		w.bad(fmt.Sprintf("%s: flags %#x, not a branch or leaf page", where, flags))
		return nil
	}
	prev := lo
	for i := 0; i < count; i++ {
		el := rawHeaderSize + rawElementSize*i
		if el+rawElementSize > len(buf) {
			w.bad(fmt.Sprintf("%s: element %d of %d runs past the page", where, i, count))
			return last
		}
		if flags == rawBranchPage {
			key := branchKey(buf, i)
			if key == nil {
				w.bad(fmt.Sprintf("%s: element %d's key runs past the page", where, i))
				continue
			}
			// Walked even when out of place: a salvage still reads
			// what lies below.
			w.inRange(where, i, key, prev, lo, hi)
			next := hi
			if i+1 < count {
				if k := branchKey(buf, i+1); k != nil {
					next = k
				}
			}
			if below := w.tree(path, binary.LittleEndian.Uint64(buf[el+8:]), depth+1, key, next); below != nil {
				prev, last = below, below
			} else {
				prev = key
			}
			continue
		}
		eflags := binary.LittleEndian.Uint32(buf[el:])
		pos, ksize, vsize := uint64(binary.LittleEndian.Uint32(buf[el+4:])), uint64(binary.LittleEndian.Uint32(buf[el+8:])), uint64(binary.LittleEndian.Uint32(buf[el+12:]))
		k := uint64(el) + pos
		if k+ksize+vsize > uint64(len(buf)) {
			w.bad(fmt.Sprintf("%s: element %d's key and value run past the page", where, i))
			continue
		}
		key, value := buf[k:k+ksize], buf[k+ksize:k+ksize+vsize]
		if !w.inOrder(len(path), key, where) {
			continue
		}
		if i == 0 || hi != nil {
			w.inRange(where, i, key, nil, lo, hi) // the order within is inOrder's
		}
		last = key
		if eflags&rawBucketFlag == 0 {
			w.visit(path, key, value, false, 0)
			continue
		}
		if len(value) < 16 {
			w.bad(fmt.Sprintf("%s: bucket %q has no header", where, key))
			continue
		}
		w.visit(path, key, nil, true, binary.LittleEndian.Uint64(value[8:]))
		sub := append(append([][]byte(nil), path...), key)
		w.enter(len(sub))
		if root := binary.LittleEndian.Uint64(value); root != 0 {
			w.tree(sub, root, depth+1, nil, nil)
		} else {
			w.elements(sub, fmt.Sprintf("bucket %q (inline in %s)", key, where), value[16:], depth+1, nil, nil)
		}
	}
	return last
}
