package metadata

import (
	bolt "go.etcd.io/bbolt"
)

// boltOptions are the bbolt options of a store's meta.db.
//
// NoFreelistSync: a commit writes only the pages it changed and the meta
// page, not also the list of free pages, which is one page more per
// commit at best and, once many records were deleted (a migration, an rm
// of many images), tens of pages: 8 bytes per free page, rewritten by
// every mkdir and setxattr. The list is rebuilt at open from the pages the
// tree reaches instead (bbolt's freepages, a walk of every page); Open
// reads every page anyway (checkPageTree), and at 100,000 images the walk
// takes a fraction of a second. The hashmap freelist allocates without
// sorting the whole list.
func boltOptions(readOnly bool) *bolt.Options {
	return &bolt.Options{
		Timeout:        lockTimeout,
		ReadOnly:       readOnly,
		NoFreelistSync: true,
		FreelistType:   bolt.FreelistMapType,
	}
}
