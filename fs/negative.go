package fs

import (
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"
)

// Negative entries: the kernel may remember for negativeTimeout that a
// namespace or image name does not exist, so that a repeated stat of a
// missing name (a shell's PATH-like probing, a tool checking whether an
// image exists before it writes it) costs what it costs on tmpfs:
//
//	$ stat ns/default/images/missing        # one LOOKUP, then none for 1 s
//	stat: cannot statx 'ns/default/images/missing': No such file or directory
//
// Only names that can come into existence solely through the kernel are
// remembered: a namespace is made by mkdir in ns/, an image or a ref-prefix
// directory by create, mkdir, link or rename in its directory, and each of
// those replaces the kernel's negative entry itself. A blob's name can
// appear without any request on its directory (written in another
// namespace under shared content), so its misses are never remembered,
// nor is anything a node does not mark with cacheMiss. Whatever makes a
// name exist without a request on that name must tell the kernel,
// parent.NotifyEntry(name): a write of index.json does
// (filesystem.commitIndex).
const negativeTimeout = time.Second

// cacheMiss answers a lookup of a name that does not exist, and lets the
// kernel remember that for negativeTimeout.
func cacheMiss(out *fuse.EntryOut) syscall.Errno {
	out.SetEntryTimeout(negativeTimeout)
	return syscall.ENOENT
}

// negativeEntries turns the lookups cacheMiss marked into what the
// kernel caches: a reply with node ID 0 and an entry timeout. go-fuse's
// fs package makes such a reply only from its one mount-wide
// NegativeTimeout, which would also cache the misses of blob names;
// every unmarked miss stays the plain ENOENT the kernel does not keep.
type negativeEntries struct {
	fuse.RawFileSystem
}

func (n negativeEntries) Lookup(cancel <-chan struct{}, header *fuse.InHeader, name string, out *fuse.EntryOut) fuse.Status {
	status := n.RawFileSystem.Lookup(cancel, header, name, out)
	if status != fuse.ENOENT || out.EntryTimeout() == 0 {
		return status
	}
	valid, validNsec := out.EntryValid, out.EntryValidNsec
	*out = fuse.EntryOut{EntryValid: valid, EntryValidNsec: validNsec}
	return fuse.OK
}
