package layerindex

import (
	"archive/tar"
	"bufio"
	"bytes"
	"io"
	"strings"

	"github.com/opencontainers/go-digest"
	"github.com/pkg/errors"
)

// Compression is how a layer blob is compressed, as its first bytes say
// (a Docker media type may say gzip of a plain tar, and the reverse).
type Compression string

const (
	Uncompressed Compression = "tar"
	Gzip         Compression = "gzip"
	Zstd         Compression = "zstd"
)

var (
	gzipMagic = []byte{0x1f, 0x8b}
	zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}
)

// Kind is the type of a tar entry as the tree shows it.
type Kind uint8

const (
	Regular Kind = iota
	Dir
	Symlink
	HardLink // a second name of an earlier entry (Link names it)
	CharDevice
	BlockDevice
	FIFO
)

// Entry is one tar entry of a layer: its header, and where its bytes lie
// in the uncompressed tar stream.
type Entry struct {
	// Name is the cleaned path ("etc/os-release"; "" is the root): no
	// leading "/" or "./", no "." components.
	Name string
	Kind Kind
	// Mode is the permission bits with setuid, setgid and sticky.
	Mode    uint32
	UID     int
	GID     int
	Size    int64
	ModTime int64 // Unix nanoseconds
	// Link is a symlink's target as stored, or a hard link's target
	// path, cleaned as Name is.
	Link     string
	DevMajor int64
	DevMinor int64
	Xattrs   map[string]string // PAX SCHILY.xattr.<name>
	// Header is the offset of the entry's first header block (its PAX
	// or GNU long-name headers included), Data that of its bytes.
	Header int64
	Data   int64
	// Sparse files are read by decoding their headers again from Header.
	Sparse bool
}

// Index is the table of one layer.
type Index struct {
	Digest      digest.Digest
	Compression Compression
	Size        int64 // of the blob
	TarSize     int64 // of the uncompressed stream
	// Refused says why the layer's files cannot be shown (an entry whose
	// name climbs out of the root); the entries then stop before it.
	Refused string
	// Checkpoints let a read start decompressing near its offset.
	Checkpoints []Checkpoint

	table table
	// windows reads a checkpoint's window from the index file when the
	// checkpoint does not hold it (an index read from its file).
	windows *windowFile
}

// Len is the number of entries.
func (idx *Index) Len() int { return len(idx.table.offsets) }

// Entry decodes entry i (0 <= i < Len()), in tar order.
func (idx *Index) Entry(i int) Entry { return idx.table.entry(i, true) }

// countingReader counts what is read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// Build reads a whole layer blob of digest d once and returns its table.
// The bytes must hash to d and be size long (size < 0: any), or Build
// fails: a table is only ever made of the blob it names. Its errors are
// NotShownErrors: they say what is wrong with the blob.
func Build(blob io.Reader, d digest.Digest, size int64, opts BuildOptions) (*Index, error) {
	idx, err := buildIndex(blob, d, size, opts)
	if err != nil {
		return nil, &NotShownError{Digest: d, Err: err}
	}
	return idx, nil
}

func buildIndex(blob io.Reader, d digest.Digest, size int64, opts BuildOptions) (*Index, error) {
	verifier := d.Verifier()
	compressed := &countingReader{r: io.TeeReader(blob, verifier)}
	buffered := bufio.NewReaderSize(compressed, 64<<10)
	magic, _ := buffered.Peek(4)
	idx := &Index{Digest: d, Compression: Uncompressed}
	var tarStream io.Reader = buffered
	var stop func()
	switch {
	case bytes.HasPrefix(magic, gzipMagic):
		idx.Compression = Gzip
		gz, err := newGzipStream(buffered, opts.span())
		if err != nil {
			return nil, errors.Wrap(err, "gzip")
		}
		tarStream, stop = gz, func() { idx.Checkpoints = gz.checkpoints }
	case bytes.HasPrefix(magic, zstdMagic):
		idx.Compression = Zstd
		zr, err := newZstdReader(buffered)
		if err != nil {
			return nil, errors.Wrap(err, "zstd")
		}
		defer zr.Close()
		tarStream = zr
	}
	counted := &countingReader{r: tarStream}
	if err := readTable(idx, counted); err != nil {
		return nil, err
	}
	// The rest of the blob (tar padding, a gzip trailer) counts in the
	// digest.
	if _, err := io.Copy(io.Discard, counted); err != nil {
		return nil, errors.Wrap(err, "reading past the tar's end")
	}
	if _, err := io.Copy(io.Discard, buffered); err != nil {
		return nil, err
	}
	if stop != nil {
		stop()
	}
	idx.TarSize = counted.n
	idx.Size = compressed.n
	if size >= 0 && compressed.n != size {
		return nil, errors.Errorf("the blob is %d bytes, its descriptor says %d", compressed.n, size)
	}
	if !verifier.Verified() {
		return nil, errors.New("the blob's bytes do not hash to its digest")
	}
	return idx, nil
}

// readTable fills idx's table from the tar stream r.
func readTable(idx *Index, r *countingReader) error {
	tr := tar.NewReader(r)
	next := int64(0) // where the next entry's first header starts
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return errors.Wrapf(err, "tar entry after offset %d", next)
		}
		e := Entry{Header: next, Data: r.n, Size: hdr.Size, Mode: uint32(hdr.Mode) & 0o7777,
			UID: hdr.Uid, GID: hdr.Gid, ModTime: hdr.ModTime.UnixNano()}
		name, why := cleanName(hdr.Name)
		if why != "" {
			idx.Refused = "tar entry " + quote(hdr.Name) + " " + why
			return nil
		}
		e.Name = name
		switch hdr.Typeflag {
		case tar.TypeReg, tar.TypeRegA, tar.TypeGNUSparse, tar.TypeCont:
			e.Kind = Regular
			e.Sparse = hdr.Typeflag == tar.TypeGNUSparse || hasSparseRecords(hdr)
		case tar.TypeDir:
			e.Kind, e.Size = Dir, 0
		case tar.TypeSymlink:
			e.Kind, e.Link, e.Size = Symlink, hdr.Linkname, 0
		case tar.TypeLink:
			target, why := cleanName(hdr.Linkname)
			if why != "" || target == "" {
				if why == "" {
					why = "is the root"
				}
				idx.Refused = "tar entry " + quote(hdr.Name) + ": hard link target " + quote(hdr.Linkname) + " " + why
				return nil
			}
			e.Kind, e.Link, e.Size = HardLink, target, 0
		case tar.TypeChar, tar.TypeBlock:
			e.Kind = CharDevice
			if hdr.Typeflag == tar.TypeBlock {
				e.Kind = BlockDevice
			}
			e.DevMajor, e.DevMinor, e.Size = hdr.Devmajor, hdr.Devminor, 0
		case tar.TypeFifo:
			e.Kind, e.Size = FIFO, 0
		default:
			// Vendor types and global headers carry no file; skip their
			// bytes as tar -x does.
			if _, err := io.Copy(io.Discard, tr); err != nil {
				return errors.Wrapf(err, "tar entry %q", hdr.Name)
			}
			next = roundUp(r.n)
			continue
		}
		if e.Kind != Regular || e.Sparse {
			e.Data = 0
		}
		for k, v := range hdr.PAXRecords {
			if name, ok := strings.CutPrefix(k, "SCHILY.xattr."); ok {
				if e.Xattrs == nil {
					e.Xattrs = map[string]string{}
				}
				e.Xattrs[name] = v
			}
		}
		if err := idx.table.add(&e); err != nil {
			return err
		}
		// The data is decompressed either way; reading it through the tar
		// reader leaves r at its end, so the next header's offset is
		// known before Next skips the padding.
		if _, err := io.Copy(io.Discard, tr); err != nil {
			return errors.Wrapf(err, "tar entry %q", hdr.Name)
		}
		next = roundUp(r.n)
	}
}

func roundUp(n int64) int64 { return (n + 511) &^ 511 }

func hasSparseRecords(hdr *tar.Header) bool {
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return true
		}
	}
	return false
}

func quote(s string) string {
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return `"` + strings.ReplaceAll(s, `"`, `\"`) + `"`
}
