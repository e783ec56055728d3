package fs

import (
	"fmt"
	"log"
	"strconv"
	"strings"
	"syscall"

	"github.com/nsfs/nsfs/metadata"
	"github.com/nsfs/nsfs/names"
)

// enter is the gate every node operation passes before it acts: the
// namespace the node belongs to (ns; nil above the namespaces) must not
// have been deleted (ENOENT), and each name the operation is given must
// fit in NAME_MAX (ENAMETOOLONG), in that order, as path resolution
// would answer. What the operation then refuses or does is its own; the
// handle limiter and the recovery from a panic stay with the handles.
//
// A namespace's nodes can outlive it (a shell's working directory, an
// open descriptor), and they name the namespace for metadata by its name,
// which a new namespace may take: so they answer ENOENT, as a removed
// directory does, and never reach into the new one. IDs only grow and a
// name names one namespace at a time, so every namespace of that name
// with an ID up to the highest deleted one is gone. (Writes do not rely
// on this: metadata checks the namespace's ID in the transaction that
// commits them.)
func (f *filesystem) enter(ns *nsRef, entryNames ...string) syscall.Errno {
	if ns != nil {
		if last, ok := f.deleted.Load(ns.name); ok && ns.id <= last.(uint64) {
			return syscall.ENOENT
		}
	}
	for _, name := range entryNames {
		if len(name) > names.MaxNameLen {
			return syscall.ENAMETOOLONG
		}
	}
	return 0
}

// namespaceDeleted records that namespace ns (as NamespaceStore.Delete returned
// it) is gone: enter refuses its nodes from now on.
func (f *filesystem) namespaceDeleted(ns metadata.Namespace) {
	f.deletedMu.Lock()
	defer f.deletedMu.Unlock()
	if last, ok := f.deleted.Load(ns.Name); !ok || last.(uint64) < ns.ID {
		f.deleted.Store(ns.Name, ns.ID)
	}
	f.temps.removeNamespace(ns.ID)
	f.scratch.removeNamespace(ns.ID)
}

// refuse answers a mutation op (mkdir, rename, symlink, ...) a directory
// does not allow: EPERM, as for a directory the user may not change, once
// the directory's namespace and the names passed the gate. It is logged,
// naming the operation, the names and the namespace: EPERM alone does not
// say that the tree allows no such entry there.
//
//	nsfs: mkdir "d" in namespace "foo": not permitted: this directory takes no such entry (EPERM)
func (d *dirBase) refuse(op string, names ...string) syscall.Errno {
	var ns *nsRef
	where := "above the namespaces"
	if d.ns.name != "" { // no namespace is named ""
		ns = &d.ns
		where = fmt.Sprintf("in namespace %q", d.ns.name)
	}
	if errno := d.fsys.enter(ns, names...); errno != 0 {
		return errno
	}
	quoted := make([]string, len(names))
	for i, name := range names {
		quoted[i] = strconv.Quote(name)
	}
	log.Printf("%s %s %s: not permitted: this directory takes no such entry (EPERM)", op, strings.Join(quoted, " to "), where)
	return syscall.EPERM
}
