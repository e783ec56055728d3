package fs

import (
	"context"
	"sync"
	"syscall"

	"github.com/nsfs/nsfs/names"
)

// pendingLabels are the labels set on a file whose blob is not committed
// yet: a blob being written (cp -a and tar --xattrs set them before the
// close that commits) or a temporary ingest (rsync -X sets them before
// its rename). They live in memory, with the rules of a blob's labels,
// and the commit gives them to the blob in its transaction.
type pendingLabels struct {
	mu     sync.Mutex
	labels map[string]string // replaced, never changed in place
}

// snapshot is the labels now (nil when none); the map is not changed
// afterwards.
func (p *pendingLabels) snapshot() map[string]string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.labels
}

func (p *pendingLabels) getxattr(attr string, dest []byte) (uint32, syscall.Errno) {
	key, errno := labelKey("getxattr", attr, syscall.ENODATA)
	if errno != 0 {
		return 0, errno
	}
	value, ok := p.snapshot()[key]
	if !ok {
		return 0, syscall.ENODATA
	}
	return getValue(value, dest)
}

// setxattr sets a label; display names the file in the log.
func (p *pendingLabels) setxattr(display, attr string, data []byte, flags uint32) syscall.Errno {
	key, cond, errno := parseSetxattr(attr, data, flags)
	if errno != 0 {
		return errno
	}
	value := string(data)
	op := "setxattr " + display + " " + attr
	if err := names.ValidateLabel(key, value); err != nil {
		return toErrno(op, err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	_, exists := p.labels[key]
	if err := cond.Check(exists); err != nil {
		return toErrno(op, err)
	}
	next := make(map[string]string, len(p.labels)+1)
	for k, v := range p.labels {
		next[k] = v
	}
	if value == "" {
		delete(next, key)
	} else {
		next[key] = value
	}
	if err := names.CheckLabelsSize(labelOwnerName(display), names.LabelsSize(next)); err != nil {
		return toErrno(op, err)
	}
	p.labels = next
	return 0
}

func (p *pendingLabels) removexattr(attr string) syscall.Errno {
	key, errno := labelKey("removexattr", attr, syscall.ENOTSUP)
	if errno != 0 {
		return errno
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.labels[key]; !ok {
		return syscall.ENODATA
	}
	next := make(map[string]string, len(p.labels))
	for k, v := range p.labels {
		if k != key {
			next[k] = v
		}
	}
	p.labels = next
	return 0
}

func (p *pendingLabels) listxattr(dest []byte) (uint32, syscall.Errno) {
	return listLabels(p.snapshot(), dest)
}

// labelOwnerName names a file in a label error.
type labelOwnerName string

func (o labelOwnerName) String() string { return string(o) }

// A blob being written keeps the labels set on it until its commit: cp -a
// and tar --xattrs set them on the open file before they close it, when
// the namespace does not hold the blob yet. Once committed, labels are the
// store's (labelXattrs).

func (f *blobFile) Getxattr(ctx context.Context, attr string, dest []byte) (uint32, syscall.Errno) {
	if ing := f.activeIngest(); ing != nil {
		return ing.labels.getxattr(attr, dest)
	}
	return f.labelXattrs.Getxattr(ctx, attr, dest)
}

func (f *blobFile) Setxattr(ctx context.Context, attr string, data []byte, flags uint32) syscall.Errno {
	if ing := f.activeIngest(); ing != nil {
		if errno := f.fsys.enter(&f.ns); errno != 0 {
			return errno
		}
		return ing.labels.setxattr(f.display(), attr, data, flags)
	}
	return f.labelXattrs.Setxattr(ctx, attr, data, flags)
}

func (f *blobFile) Removexattr(ctx context.Context, attr string) syscall.Errno {
	if ing := f.activeIngest(); ing != nil {
		return ing.labels.removexattr(attr)
	}
	return f.labelXattrs.Removexattr(ctx, attr)
}

func (f *blobFile) Listxattr(ctx context.Context, dest []byte) (uint32, syscall.Errno) {
	if ing := f.activeIngest(); ing != nil {
		return ing.labels.listxattr(dest)
	}
	return f.labelXattrs.Listxattr(ctx, dest)
}
