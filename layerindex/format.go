package layerindex

import (
	"bufio"
	"bytes"
	"compress/flate"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"hash/crc32"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"

	"github.com/opencontainers/go-digest"
	"github.com/pkg/errors"
)

// An index file is a line, then the head, then the windows:
//
//	nsfs-layerindex 2 <sha256 of the head, hex> <head bytes>\n
//	head:     digest, compression, blob size, tar size, refused (each
//	          a uvarint or a uvarint length and bytes), entries (uvarint
//	          count, uvarint length of the records with whole names,
//	          uvarint length, the records: see table.go), and
//	          checkpoints (uvarint count, then per checkpoint In, Bits
//	          (a byte), Out, the length of its window as stored and the
//	          window's CRC-32 (4 bytes, little-endian))
//	windows:  each checkpoint's 32 KiB window, deflated, one after
//	          another
//
// Loading reads the line and the head, and checks the windows' CRCs
// without keeping them; a read from a checkpoint reads its window then,
// and checks its CRC again. A file of another version, or whose head
// does not hash to the line's sum, or whose length is not what the head
// says, is damaged: the cache builds it again from the blob.
const fileMagic = "nsfs-layerindex 2 "

// windowFile is the index file the windows of an index are read from.
type windowFile struct {
	path  string
	start int64 // where the windows begin
}

// fileWindow is where a checkpoint's window lies in the file: offset
// from the first window, stored length, CRC-32 of the stored bytes.
type fileWindow struct {
	off  int64
	size uint32
	sum  uint32
}

// window returns the 32 KiB before checkpoint cp.
func (idx *Index) window(cp *Checkpoint) ([]byte, error) {
	if cp.Window != nil || idx.windows == nil {
		return cp.Window, nil
	}
	f, err := os.OpenFile(idx.windows.path, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil, errors.Wrapf(err, "layer index %s", idx.Digest)
	}
	defer f.Close()
	stored := make([]byte, cp.file.size)
	if _, err := f.ReadAt(stored, idx.windows.start+cp.file.off); err != nil {
		return nil, errors.Wrapf(noEOF(err), "layer index %s: window at %d", idx.Digest, cp.Out)
	}
	if crc32.ChecksumIEEE(stored) != cp.file.sum {
		return nil, errors.Errorf("layer index %s: the window at %d is damaged", idx.Digest, cp.Out)
	}
	w, err := io.ReadAll(io.LimitReader(flate.NewReader(bytes.NewReader(stored)), 1<<16))
	if err != nil {
		return nil, errors.Wrapf(err, "layer index %s: window at %d", idx.Digest, cp.Out)
	}
	return w, nil
}

// encodeFile is the bytes of idx's file; the checkpoints learn where
// their windows lie in it (fileCheckpoints, to keep once it is written).
func encodeFile(idx *Index) (data []byte, fileCheckpoints []Checkpoint, windowsStart int64, err error) {
	var windows bytes.Buffer
	fileCheckpoints = make([]Checkpoint, len(idx.Checkpoints))
	zw, _ := flate.NewWriter(nil, flate.BestSpeed)
	for i, cp := range idx.Checkpoints {
		w, err := idx.window(&cp)
		if err != nil {
			return nil, nil, 0, err
		}
		off := windows.Len()
		zw.Reset(&windows)
		zw.Write(w)
		if err := zw.Close(); err != nil {
			return nil, nil, 0, err
		}
		stored := windows.Bytes()[off:]
		cp.Window = nil
		cp.file = fileWindow{off: int64(off), size: uint32(len(stored)), sum: crc32.ChecksumIEEE(stored)}
		fileCheckpoints[i] = cp
	}
	head := appendString(nil, string(idx.Digest))
	head = appendString(head, string(idx.Compression))
	head = binary.AppendUvarint(head, uint64(idx.Size))
	head = binary.AppendUvarint(head, uint64(idx.TarSize))
	head = appendString(head, idx.Refused)
	head = binary.AppendUvarint(head, uint64(idx.Len()))
	head = binary.AppendUvarint(head, uint64(len(idx.table.data)))
	records := idx.table.encode(nil)
	head = binary.AppendUvarint(head, uint64(len(records)))
	head = append(head, records...)
	head = binary.AppendUvarint(head, uint64(len(fileCheckpoints)))
	for _, cp := range fileCheckpoints {
		head = binary.AppendUvarint(head, uint64(cp.In))
		head = append(head, cp.Bits)
		head = binary.AppendUvarint(head, uint64(cp.Out))
		head = binary.AppendUvarint(head, uint64(cp.file.size))
		head = binary.LittleEndian.AppendUint32(head, cp.file.sum)
	}
	sum := sha256.Sum256(head)
	line := fileMagic + hex.EncodeToString(sum[:]) + " " + strconv.Itoa(len(head)) + "\n"
	data = make([]byte, 0, len(line)+len(head)+windows.Len())
	data = append(append(append(data, line...), head...), windows.Bytes()...)
	return data, fileCheckpoints, int64(len(line) + len(head)), nil
}

// decodeFile reads the index file f (of size bytes, at path): its line
// and head, checked.
func decodeFile(f *os.File, path string, size int64) (*Index, error) {
	first := make([]byte, min(size, 64<<10))
	if _, err := io.ReadFull(io.NewSectionReader(f, 0, size), first); err != nil {
		return nil, err
	}
	line, rest, ok := bytes.Cut(first, []byte("\n"))
	fields, found := strings.CutPrefix(string(line), fileMagic)
	sumHex, lenText, ok2 := strings.Cut(fields, " ")
	headLen, err := strconv.ParseInt(lenText, 10, 64)
	if !ok || !found || !ok2 || err != nil || headLen < 0 || headLen > size {
		return nil, errors.New("not an index file of this version")
	}
	start := int64(len(line) + 1)
	if start+headLen > size {
		return nil, errors.New("cut short")
	}
	head := rest
	if int64(len(head)) >= headLen {
		head = head[:headLen]
	} else {
		head = make([]byte, headLen)
		if _, err := f.ReadAt(head, start); err != nil {
			return nil, noEOF(err)
		}
	}
	sum := sha256.Sum256(head)
	if hex.EncodeToString(sum[:]) != sumHex {
		return nil, errors.New("damaged (its head does not hash to its sum)")
	}
	d := recordDecoder{b: head}
	idx := &Index{}
	digestBytes, _ := d.bytes()
	idx.Digest = digest.Digest(digestBytes)
	compression, _ := d.bytes()
	idx.Compression = Compression(compression)
	idx.Size = int64(d.uvarint())
	idx.TarSize = int64(d.uvarint())
	refused, _ := d.bytes()
	idx.Refused = string(refused)
	n := d.uvarint()
	whole := d.uvarint()
	records, _ := d.bytes()
	if d.err != nil || n > uint64(len(records)) || whole > 1<<32 {
		return nil, errors.New("damaged head")
	}
	t, err := decodeTable(records, int(n), int(whole))
	if err != nil {
		return nil, err
	}
	idx.table = *t
	ncp := d.uvarint()
	if d.err != nil || ncp > uint64(len(head)) {
		return nil, errors.New("damaged head")
	}
	idx.Checkpoints = make([]Checkpoint, ncp)
	windows := int64(0)
	for i := range idx.Checkpoints {
		cp := &idx.Checkpoints[i]
		cp.In = int64(d.uvarint())
		cp.Bits = d.byte()
		cp.Out = int64(d.uvarint())
		cp.file.size = uint32(d.uvarint())
		cp.file.off = windows
		windows += int64(cp.file.size)
		if d.pos+4 > len(head) {
			d.fail()
			break
		}
		cp.file.sum = binary.LittleEndian.Uint32(head[d.pos:])
		d.pos += 4
	}
	if d.err != nil || d.pos != len(head) {
		return nil, errors.New("damaged head")
	}
	if start+headLen+windows != size {
		return nil, errors.Errorf("%d bytes, its head says %d", size, start+headLen+windows)
	}
	idx.windows = &windowFile{path: path, start: start + headLen}
	if err := checkWindows(f, idx); err != nil {
		return nil, err
	}
	return idx, nil
}

// checkWindows reads the windows of a file once, so that a damaged one
// is known now (and the index rebuilt), not at a read.
func checkWindows(f *os.File, idx *Index) error {
	r := bufio.NewReaderSize(io.NewSectionReader(f, idx.windows.start, 1<<62), 64<<10)
	for _, cp := range idx.Checkpoints {
		h := crc32.NewIEEE()
		if _, err := io.CopyN(h, r, int64(cp.file.size)); err != nil {
			return errors.Wrap(noEOF(err), "windows")
		}
		if h.Sum32() != cp.file.sum {
			return errors.Errorf("the window at %d is damaged", cp.Out)
		}
	}
	return nil
}
