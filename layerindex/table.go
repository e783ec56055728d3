package layerindex

import (
	"encoding/binary"
	"sort"
	"unsafe"

	"github.com/pkg/errors"
)

// A layer's table is kept as one byte slice of records, one per entry,
// and the offset of each: about 25 bytes and the name per entry, with
// no pointer for the garbage collector to follow, where a struct per
// entry and its strings took several times that. An Entry is decoded
// when asked for; its Name and Link point into the table.
//
// A record is:
//
//	flags     byte: Kind (3 bits), sparse (1<<3), has xattrs (1<<4)
//	mode      uvarint
//	uid, gid  varint
//	size      uvarint
//	mtime     varint (Unix nanoseconds)
//	header    uvarint
//	data      uvarint, Data-Header (a regular, not sparse, file only)
//	shared    uvarint: bytes of the previous record's name this name
//	          starts with (0 in memory; in a file names share prefixes)
//	name      uvarint length, bytes (the part after the shared prefix)
//	link      uvarint length, bytes (a symlink or hard link only)
//	device    varint major, minor (a char or block device only)
//	xattrs    uvarint count, then name and value, each uvarint length
//	          and bytes, in name order (has xattrs only)
const (
	flagKind   = 0x07
	flagSparse = 0x08
	flagXattrs = 0x10
)

// appendRecord encodes e after dst; prev is the name of the record
// before (shared prefix), "" to store the whole name.
func appendRecord(dst []byte, e *Entry, prev string) []byte {
	flags := byte(e.Kind) & flagKind
	if e.Sparse {
		flags |= flagSparse
	}
	if len(e.Xattrs) > 0 {
		flags |= flagXattrs
	}
	dst = append(dst, flags)
	dst = binary.AppendUvarint(dst, uint64(e.Mode))
	dst = binary.AppendVarint(dst, int64(e.UID))
	dst = binary.AppendVarint(dst, int64(e.GID))
	dst = binary.AppendUvarint(dst, uint64(e.Size))
	dst = binary.AppendVarint(dst, e.ModTime)
	dst = binary.AppendUvarint(dst, uint64(e.Header))
	if e.Kind == Regular && !e.Sparse {
		dst = binary.AppendUvarint(dst, uint64(e.Data-e.Header))
	}
	shared := 0
	for shared < len(prev) && shared < len(e.Name) && prev[shared] == e.Name[shared] {
		shared++
	}
	dst = binary.AppendUvarint(dst, uint64(shared))
	dst = appendString(dst, e.Name[shared:])
	switch e.Kind {
	case Symlink, HardLink:
		dst = appendString(dst, e.Link)
	case CharDevice, BlockDevice:
		dst = binary.AppendVarint(dst, e.DevMajor)
		dst = binary.AppendVarint(dst, e.DevMinor)
	}
	if len(e.Xattrs) > 0 {
		names := make([]string, 0, len(e.Xattrs))
		for k := range e.Xattrs {
			names = append(names, k)
		}
		sort.Strings(names)
		dst = binary.AppendUvarint(dst, uint64(len(names)))
		for _, k := range names {
			dst = appendString(dst, k)
			dst = appendString(dst, e.Xattrs[k])
		}
	}
	return dst
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// recordDecoder reads records; a damaged one sets err (a file's is
// checked by its checksum first, so this is a second guard).
type recordDecoder struct {
	b        []byte
	pos      int
	err      error
	nameAt   int // where the last record's name starts in b
	sharedAt int // and its shared count
}

func (d *recordDecoder) fail() {
	if d.err == nil {
		d.err = errors.Errorf("record at byte %d is damaged", d.pos)
	}
	d.pos = len(d.b)
}

func (d *recordDecoder) byte() byte {
	if d.pos >= len(d.b) {
		d.fail()
		return 0
	}
	c := d.b[d.pos]
	d.pos++
	return c
}

func (d *recordDecoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b[d.pos:])
	if n <= 0 {
		d.fail()
		return 0
	}
	d.pos += n
	return v
}

func (d *recordDecoder) varint() int64 {
	v, n := binary.Varint(d.b[d.pos:])
	if n <= 0 {
		d.fail()
		return 0
	}
	d.pos += n
	return v
}

// bytes returns the next length-prefixed bytes (in place) and where
// they start.
func (d *recordDecoder) bytes() ([]byte, int) {
	n := d.uvarint()
	if n > uint64(len(d.b)-d.pos) {
		d.fail()
		return nil, d.pos
	}
	at := d.pos
	d.pos += int(n)
	return d.b[at:d.pos], at
}

// str makes a string of b without copying: the table is never written
// after it is made, and the string keeps it alive.
func str(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// record reads the record at d.pos into e, but for its name: e.Name is
// the stored part, after the shared bytes of the name before, which the
// caller puts back (a table in memory shares none). xattrs are decoded
// only when asked for.
func (d *recordDecoder) record(e *Entry, xattrs bool) (shared int) {
	flags := d.byte()
	e.Kind = Kind(flags & flagKind)
	e.Sparse = flags&flagSparse != 0
	e.Mode = uint32(d.uvarint())
	e.UID = int(d.varint())
	e.GID = int(d.varint())
	e.Size = int64(d.uvarint())
	e.ModTime = d.varint()
	e.Header = int64(d.uvarint())
	e.Data = 0
	if e.Kind == Regular && !e.Sparse {
		e.Data = e.Header + int64(d.uvarint())
	}
	d.sharedAt = d.pos
	shared = int(min(d.uvarint(), 1<<31))
	name, at := d.bytes()
	e.Name, d.nameAt = str(name), at
	e.Link, e.DevMajor, e.DevMinor, e.Xattrs = "", 0, 0, nil
	switch e.Kind {
	case Symlink, HardLink:
		link, _ := d.bytes()
		e.Link = str(link)
	case CharDevice, BlockDevice:
		e.DevMajor = d.varint()
		e.DevMinor = d.varint()
	}
	if flags&flagXattrs != 0 {
		n := d.uvarint()
		if xattrs {
			e.Xattrs = make(map[string]string, min(n, 64))
		}
		for i := uint64(0); i < n && d.err == nil; i++ {
			k, _ := d.bytes()
			v, _ := d.bytes()
			if xattrs {
				e.Xattrs[string(k)] = string(v)
			}
		}
	}
	if e.Kind > FIFO {
		d.fail()
	}
	return shared
}

// table is the records of a layer's entries.
type table struct {
	data    []byte
	offsets []uint32 // of each record in data
}

func (t *table) add(e *Entry) error {
	if len(t.data) > 1<<32-1 {
		return errors.New("the table of entries passes 4 GiB")
	}
	t.offsets = append(t.offsets, uint32(len(t.data)))
	t.data = appendRecord(t.data, e, "")
	return nil
}

// entry decodes record i.
func (t *table) entry(i int, xattrs bool) Entry {
	e, _ := t.entryAt(i, xattrs)
	return e
}

// entryAt decodes record i, and says where its name lies in t.data.
func (t *table) entryAt(i int, xattrs bool) (Entry, int) {
	var e Entry
	d := recordDecoder{b: t.data, pos: int(t.offsets[i])}
	d.record(&e, xattrs)
	return e, d.nameAt
}

// encode writes the table as a file holds it: names share the prefix of
// the name before.
func (t *table) encode(dst []byte) []byte {
	prev := ""
	for i := range t.offsets {
		e := t.entry(i, true)
		dst = appendRecord(dst, &e, prev)
		prev = e.Name
	}
	return dst
}

// decodeTable reads n records as a file holds them into a table of whole
// names, whole bytes long.
func decodeTable(b []byte, n, whole int) (*table, error) {
	t := &table{data: make([]byte, 0, whole), offsets: make([]uint32, 0, n)}
	d := recordDecoder{b: b}
	var name []byte // the whole name of the record before, then this one's
	var e Entry
	for i := 0; i < n; i++ {
		start := d.pos
		shared := d.record(&e, false)
		if d.err != nil {
			return nil, d.err
		}
		if shared > len(name) {
			return nil, errors.Errorf("record %d shares %d bytes of a %d-byte name", i, shared, len(name))
		}
		name = append(name[:shared], e.Name...)
		if len(t.data) > 1<<32-1 {
			return nil, errors.New("the table of entries passes 4 GiB")
		}
		// The record as it was, but for its name, now whole.
		t.offsets = append(t.offsets, uint32(len(t.data)))
		t.data = append(t.data, b[start:d.sharedAt]...)
		t.data = append(t.data, 0)
		t.data = appendString(t.data, str(name))
		t.data = append(t.data, b[d.nameAt+len(e.Name):d.pos]...)
	}
	if d.pos != len(b) || len(t.data) != whole {
		return nil, errors.Errorf("records of %d bytes (%d whole), not %d (%d)", d.pos, len(t.data), len(b), whole)
	}
	return t, nil
}
