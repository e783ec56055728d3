package fs

import (
	"context"
	"syscall"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/nsfs/nsfs/metadata"
)

// Times are the store's (metadata/times.go): a directory's move when an
// entry is added, removed or renamed in it, a label moves an object's
// ctime only, and a time set with utimes is kept, so that `rsync -a` run
// twice writes nothing the second time:
//
//	$ stat -c '%y' ns/default/images
//	2026-12-02 01:00:00.000000000 +0000
//	$ cp manifest.json ns/default/images/app:v1
//	$ stat -c '%y' ns/default/images
//	2026-12-02 01:05:00.000000000 +0000
//	$ touch -d 2020-01-01 ns/default/images/app:v1
//	$ stat -c '%y' ns/default/images/app:v1
//	2020-01-01 00:00:00.000000000 +0000

// dirTimes are the times of directory dir of namespace ns (ns "" is ns/),
// as metadata.DB.DirTimes names them; the mount's start when the store
// has none (ns/ of a store from before) or cannot say (the gate answers
// for a deleted namespace).
func (f *filesystem) dirTimes(ns, dir string) (mtime, ctime time.Time) {
	t, ok, err := f.db.DirTimes(ns, dir)
	if err != nil || !ok {
		return f.started, f.started
	}
	return t.Modified, t.Changed
}

// fillStoredDir fills the attributes of directory dir of namespace ns.
func (f *filesystem) fillStoredDir(a *fuse.Attr, ns nsRef, dir string) {
	mtime, ctime := f.dirTimes(ns.name, dir)
	f.fillDir(a, ns, mtime, ctime)
}

// setattrStoredDir is setattrDir for a directory whose times the store
// keeps (ns "" is ns/): a utimes mtime is stored; size is EISDIR.
func setattrStoredDir(fsys *filesystem, in *fuse.SetAttrIn, out *fuse.AttrOut, n gofs.NodeGetattrer, ns, dir, display string) syscall.Errno {
	if _, ok := in.GetSize(); ok {
		return syscall.EISDIR
	}
	if mtime, ok := in.GetMTime(); ok {
		if err := fsys.db.SetDirModified(ns, dir, mtime); err != nil {
			return toErrno("utimes "+display, err)
		}
	}
	return n.Getattr(context.Background(), nil, out)
}

// setModified stores a utimes mtime of an image. While a writer holds
// bytes not yet committed (cp -p sets the times before its close), it is
// kept until the commit, which would otherwise replace it with its own
// time.
func (f *imageFile) setModified(mtime time.Time) syscall.Errno {
	f.mu.Lock()
	ref, pending := f.currentRefLocked(), f.life == creating || f.life == abandoned
	var writers []*imageWriter
	if f.writes != nil {
		for w := range f.writes.writers {
			writers = append(writers, w)
		}
	}
	f.mu.Unlock()
	if ref == "" {
		return syscall.ENOENT
	}
	for _, w := range writers {
		w.mu.Lock()
		if w.dirty {
			pending = true
			w.mtime = mtime
		}
		w.mu.Unlock()
	}
	if pending {
		f.mu.Lock()
		f.writesLocked().pendingMtime = mtime
		f.mu.Unlock()
		return 0
	}
	if err := f.fsys.db.SetModified(metadata.Object{Namespace: f.ns.name, Image: ref}, mtime); err != nil {
		return toErrno("utimes "+imagePath(f.ns, ref), err)
	}
	return 0
}

// committedTimes follows a successful commit: a utimes mtime kept for it
// is stored now, and the directory the image is in shows the entry's
// arrival (the kernel keeps its attributes otherwise); now as for
// filesystem.notify.
func (f *imageFile) committedTimes(now bool) {
	f.mu.Lock()
	var mtime time.Time
	if f.writes != nil {
		mtime, f.writes.pendingMtime = f.writes.pendingMtime, time.Time{}
	}
	ref := f.currentRefLocked()
	f.dropWritesLocked()
	f.mu.Unlock()
	if !mtime.IsZero() && ref != "" {
		if err := f.fsys.db.SetModified(metadata.Object{Namespace: f.ns.name, Image: ref}, mtime); err != nil {
			toErrno("utimes "+imagePath(f.ns, ref)+" (at its commit)", err)
		}
	}
	if _, parent := f.Parent(); parent != nil {
		f.fsys.notify(now, func() { parent.NotifyContent(-1, 0) }) // its attributes
	}
}
