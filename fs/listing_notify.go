package fs

import (
	"strings"

	gofs "github.com/hanwen/go-fuse/v2/fs"
)

// forgetListings drops the kernel's kept listing (FOPEN_CACHE_DIR,
// kernel_listing.go) of images/ and of every directory below it the tree
// knows that lies on the path of one of refs: the directories whose
// listing a change of those refs that did not come through the kernel
// (a write of index.json) may have changed.
//
// The kernel checks its kept listing only when a listing starts at
// offset 0, against the directory's version (bumped by a change through
// it, and by an entry notification of a name it holds) and its mtime
// (re-read only once its attributes expired). A name the kernel holds no
// dentry of (one the change made, or one whose dentry went) bumps
// nothing, and an open directory rewound (rewinddir, lseek 0) opens
// nothing, so without this a rewind within the attributes' second would
// be served the listing from before the change:
//
//	d = opendir("images/lib"); readdir(d) to its end  # the kernel keeps it
//	$ skopeo copy ... oci:ns/default:lib/new          # writes index.json
//	rewinddir(d); readdir(d)                          # shows new
//
// An inode notification drops the directory's page cache, where the
// kernel keeps the listing, and its attributes: the write moved the
// mtime of the directories it added names to, and a stat must show it
// (rsync -a sets a directory's time, then sets it again only if a stat
// shows it moved). Unlike an entry notification it takes no inode lock
// in the kernel (only the pages' locks, held briefly by a listing
// copying out of the cache), so it may be sent from any request handler,
// before the operation returns.
func forgetListings(images *gofs.Inode, refs []string) {
	if len(refs) == 0 {
		return // a write that changed nothing (a tool rewrites index.json as it was)
	}
	dirs := map[*gofs.Inode]bool{images: true}
	for _, ref := range refs {
		n := images
		names := strings.Split(ref, "/")
		for _, name := range names[:len(names)-1] {
			if n = n.GetChild(name); n == nil || !n.IsDir() {
				break
			}
			dirs[n] = true
		}
	}
	for dir := range dirs {
		dir.NotifyContent(0, 0)
	}
}
