package client

import (
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/nsfs/nsfs/names"
	"github.com/opencontainers/go-digest"
	"github.com/pkg/errors"
)

// Blob is a blob a namespace holds, as `nsfs content ls` shows it.
type Blob struct {
	Digest digest.Digest
	Size   int64
	// Created is the blob file's modification time: when the blob was
	// committed.
	Created time.Time
	// Labels are the blob file's user.* xattrs (content labels, per
	// namespace).
	Labels map[string]string
}

// Blobs lists the blobs namespace n holds (`ls -l blobs/sha256`), sorted
// by digest: only committed blobs, not the temporary ingests being
// written there under names that are no digest (`.tmp.XXXXXX`).
func (n Namespace) Blobs() ([]Blob, error) {
	if err := n.CheckExists(); err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(n.BlobsDir())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, errors.Wrapf(err, "listing the blobs of namespace %q", n.Name)
	}
	var blobs []Blob
	for _, e := range entries {
		d, ok := blobFileDigest(e.Name())
		if !ok {
			continue // a temporary ingest
		}
		info, err := e.Info()
		if errors.Is(err, fs.ErrNotExist) {
			continue // dropped since the listing
		}
		if err != nil {
			return nil, errors.Wrapf(err, "blob %s", e.Name())
		}
		labels, err := readLabels(filepath.Join(n.BlobsDir(), e.Name()))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, errors.Wrapf(err, "blob %s", e.Name())
		}
		blobs = append(blobs, Blob{
			Digest:  d,
			Size:    info.Size(),
			Created: info.ModTime(),
			Labels:  labels,
		})
	}
	return blobs, nil
}

// blobFileDigest is the digest a file of blobs/sha256 is named after;
// false when the name is no digest by the store's rule
// (names.ValidateDigest): the file is a temporary ingest.
func blobFileDigest(name string) (digest.Digest, bool) {
	d := digest.NewDigestFromEncoded(digest.SHA256, name)
	return d, names.ValidateDigest(d) == nil
}

// OpenBlob opens blob dgst for reading (`cat blobs/sha256/<hex>`). What the
// namespace can read follows the mount's content sharing: under shared,
// any blob of the store. A blob it cannot see is ErrNotFound.
func (n Namespace) OpenBlob(dgst string) (*os.File, error) {
	if err := n.CheckExists(); err != nil {
		return nil, err
	}
	d, err := digest.Parse(dgst)
	if err != nil {
		return nil, withKind(ErrInvalid, "digest %q: %v", dgst, err)
	}
	if d.Algorithm() != digest.SHA256 {
		return nil, withKind(ErrInvalid, "digest %s: only sha256 blobs are stored", d)
	}
	f, err := os.Open(filepath.Join(n.BlobsDir(), d.Encoded()))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, withKind(ErrNotFound, "content digest %s: not found", d)
	}
	if err != nil {
		return nil, errors.Wrapf(err, "content digest %s", d)
	}
	return f, nil
}
