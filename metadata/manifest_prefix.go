package metadata

import (
	"github.com/nsfs/nsfs/imagegraph"
	"github.com/pkg/errors"
)

// ManifestPrefix judges the bytes of an image being written as they
// arrive, so that a write whose bytes can begin no manifest or index fails
// itself (ErrInvalidArgument), rather than the close a shell ignores:
// `echo junk > images/x` prints an error and exits 1. It judges bytes
// written in order from offset 0 (cp, cat, a shell's redirection, also
// over the old bytes of a file opened without O_TRUNC); after a write
// anywhere else, or a truncate into what it judged, it judges nothing
// until the bytes start over at 0, and the commit decides as before.
// ImageStore.Put still judges the whole manifest. The zero value expects
// the bytes at offset 0. It is not safe for concurrent use.
type ManifestPrefix struct {
	scanner imagegraph.PrefixScanner
	next    int64 // where the next write in order begins
	off     bool  // a write out of order: nothing is judged
}

// Write judges data, written at off. An error names what is wrong and
// where; every later write in order gets it too.
func (p *ManifestPrefix) Write(off int64, data []byte) error {
	if p.off {
		return nil
	}
	if off != p.next {
		p.off = true
		return nil
	}
	if err := p.scanner.Write(data); err != nil {
		return errors.WithMessagef(ErrInvalidArgument, "the bytes written can begin no manifest or index: %v", err)
	}
	p.next += int64(len(data))
	return nil
}

// Truncate follows a truncate to size: at 0 the bytes start over.
func (p *ManifestPrefix) Truncate(size int64) {
	switch {
	case size == 0:
		*p = ManifestPrefix{}
	case size < p.next:
		p.off = true
	}
}

// ImageAppend is the error for opening image ref of namespace ns with
// O_APPEND: a manifest is written whole (`echo x >> images/app` would
// otherwise fail only at its close, which the shell ignores).
func ImageAppend(ns, ref string) error {
	return errors.WithMessagef(ErrInvalidArgument, "image %q in namespace %q: a manifest is written whole, never appended to (O_APPEND)", shorten(ref), ns)
}
