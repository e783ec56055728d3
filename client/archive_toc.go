package client

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"io"
	"os"
	"path"
	"strings"

	"github.com/opencontainers/go-digest"
	"github.com/pkg/errors"
)

// The table of contents of an archive being imported: where each file of
// the tar is and what its bytes hash to, read once.

// seekableArchive gives random access to the archive r: r itself when it
// is a regular file that is not gzipped, else a temporary copy
// (decompressed) that is already unlinked, so nothing is left behind.
func seekableArchive(ctx context.Context, r io.Reader) (io.ReaderAt, func(), error) {
	noop := func() {}
	if f, ok := r.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
			var magic [2]byte
			if n, _ := f.ReadAt(magic[:], 0); n < 2 || magic != [2]byte{gzipMagic0, gzipMagic1} {
				return io.NewSectionReader(f, 0, fi.Size()), noop, nil
			}
		}
	}
	br := bufio.NewReaderSize(r, 64<<10)
	src := io.Reader(br)
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == gzipMagic0 && magic[1] == gzipMagic1 {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, noop, errors.Wrap(err, "reading the gzipped archive")
		}
		defer zr.Close()
		src = zr
	}
	tmp, err := os.CreateTemp("", "nsfs-import-*.tar")
	if err != nil {
		return nil, noop, errors.Wrap(err, "spooling the archive")
	}
	// Unlinked at once: the descriptor keeps it while the import runs.
	os.Remove(tmp.Name())
	size, err := io.Copy(tmp, &ctxReader{ctx: ctx, r: src})
	if err != nil {
		tmp.Close()
		return nil, noop, errors.Wrapf(err, "spooling the archive to %s", os.TempDir())
	}
	return io.NewSectionReader(tmp, 0, size), func() { tmp.Close() }, nil
}

// tarEntry is a regular file of the archive: where its bytes are and
// what they hash to.
type tarEntry struct {
	name   string
	offset int64
	size   int64
	digest digest.Digest
}

// tarArchive is the table of contents of an archive, every regular file
// hashed.
type tarArchive struct {
	r        *io.SectionReader
	entries  map[string]tarEntry // by cleaned name
	links    map[string]string   // symlinks and hard links: cleaned name → cleaned target
	byDigest map[digest.Digest]tarEntry
}

// scanArchive reads the tar once, noting and hashing every regular file.
func scanArchive(ctx context.Context, ra io.ReaderAt) (*tarArchive, error) {
	sr, ok := ra.(*io.SectionReader)
	if !ok {
		return nil, errors.New("internal: the archive is not seekable")
	}
	a := &tarArchive{
		r:        sr,
		entries:  map[string]tarEntry{},
		links:    map[string]string{},
		byDigest: map[digest.Digest]tarEntry{},
	}
	counter := &offsetReader{r: sr}
	tr := tar.NewReader(counter)
	for i := 0; ; i++ {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			if i == 0 {
				return nil, errors.Errorf("not a tar archive (%v)", err)
			}
			return nil, errors.Wrap(err, "reading the tar archive")
		}
		name := path.Clean(strings.TrimPrefix(hdr.Name, "/"))
		switch hdr.Typeflag {
		case tar.TypeReg, tar.TypeRegA: //nolint:staticcheck // old tars still use TypeRegA
			e := tarEntry{name: name, offset: counter.off, size: hdr.Size}
			h := sha256.New()
			if _, err := io.Copy(h, &ctxReader{ctx: ctx, r: tr}); err != nil {
				return nil, errors.Wrapf(err, "reading %s from the tar archive", hdr.Name)
			}
			e.digest = digest.NewDigest(digest.SHA256, h)
			a.entries[name] = e
			if _, dup := a.byDigest[e.digest]; !dup {
				a.byDigest[e.digest] = e
			}
		case tar.TypeSymlink:
			a.links[name] = path.Join(path.Dir(name), hdr.Linkname)
		case tar.TypeLink:
			a.links[name] = path.Clean(strings.TrimPrefix(hdr.Linkname, "/"))
		}
	}
	return a, nil
}

// offsetReader counts how far the tar reader has read: after Next, the
// offset of the entry's bytes. Seek lets the tar reader skip without
// reading.
type offsetReader struct {
	r   *io.SectionReader
	off int64
}

func (o *offsetReader) Read(p []byte) (int, error) {
	n, err := o.r.Read(p)
	o.off += int64(n)
	return n, err
}

func (o *offsetReader) Seek(offset int64, whence int) (int64, error) {
	n, err := o.r.Seek(offset, whence)
	if err == nil {
		o.off = n
	}
	return n, err
}

// file finds a regular file by name, following links.
func (a *tarArchive) file(name string) (tarEntry, bool) {
	name = path.Clean(strings.TrimPrefix(name, "/"))
	for hops := 0; hops < maxSymlinkHops; hops++ {
		if e, ok := a.entries[name]; ok {
			return e, true
		}
		target, ok := a.links[name]
		if !ok {
			return tarEntry{}, false
		}
		name = target
	}
	return tarEntry{}, false
}

// has tells whether the archive holds a file (or link) of that name.
func (a *tarArchive) has(name string) bool {
	_, ok := a.entries[name]
	_, link := a.links[name]
	return ok || link
}

// readEntry reads a small file of the archive whole.
func (a *tarArchive) readEntry(e tarEntry, limit int64) ([]byte, error) {
	if e.size > limit {
		return nil, errors.Errorf("%s is %d bytes, over the %d-byte limit", e.name, e.size, limit)
	}
	data := make([]byte, e.size)
	if _, err := a.r.ReadAt(data, e.offset); err != nil && !(err == io.EOF && int64(len(data)) == e.size) {
		return nil, errors.Wrapf(err, "reading %s from the archive", e.name)
	}
	return data, nil
}
