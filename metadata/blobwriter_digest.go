package metadata

import "github.com/opencontainers/go-digest"

// Digest is the digest of the bytes written so far. fs/ compares it with
// the expected digest when a descriptor is closed: a close of a duplicated
// descriptor (a shell redirection, a fork) in the middle of an ingest must
// not end it, so only a close at which the bytes already match commits.
func (w *BlobWriter) Digest() digest.Digest { return w.w.Digest() }
