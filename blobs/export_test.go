package blobs

import "github.com/opencontainers/go-digest"

// Walk calls fn for every committed blob (order unspecified): the regular
// files named by a sha256 hex digest; everything else (walkBlobEntries
// sees it) is skipped, as are blobs deleted while the walk runs. An error
// from fn stops the walk and is returned. The store's users list blobs
// with List; the tests walk them to see a walk stop and skip.
func (s *Store) Walk(fn func(Info) error) error {
	return s.walkBlobEntries(func(e Entry) error {
		d := digest.NewDigestFromEncoded(digest.SHA256, e.Name)
		if !e.Mode.IsRegular() || ValidateDigest(d) != nil {
			return nil
		}
		return fn(Info{Digest: d, Size: e.Size, ModTime: e.ModTime, Mode: e.Mode})
	})
}
