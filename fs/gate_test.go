package fs

import (
	"strings"
	"syscall"
	"testing"

	"github.com/nsfs/nsfs/metadata"
	"github.com/nsfs/nsfs/names"
)

// The gate answers as path resolution would: a deleted namespace first
// (ENOENT), then a name over NAME_MAX (ENAMETOOLONG); a namespace of the
// same name made again after the delete passes.
func TestEnterGate(t *testing.T) {
	f := &filesystem{}
	old, again := nsRef{"dev", 3}, nsRef{"dev", 9}
	long := strings.Repeat("x", names.MaxNameLen+1)
	fits := strings.Repeat("x", names.MaxNameLen)
	if errno := f.enter(&old, fits); errno != 0 {
		t.Fatalf("before the delete: %v", errno)
	}
	if errno := f.enter(&old, "a", long); errno != syscall.ENAMETOOLONG {
		t.Fatalf("second name too long: %v, want ENAMETOOLONG", errno)
	}
	f.namespaceDeleted(metadata.Namespace{Name: "dev", ID: 3})
	if errno := f.enter(&old, long); errno != syscall.ENOENT {
		t.Fatalf("deleted namespace with a long name: %v, want ENOENT first", errno)
	}
	if errno := f.enter(&again, fits); errno != 0 {
		t.Fatalf("the namespace made again: %v", errno)
	}
	f.namespaceDeleted(metadata.Namespace{Name: "dev", ID: 2}) // an older one: changes nothing
	if errno := f.enter(&again); errno != 0 {
		t.Fatalf("the namespace made again, after an older delete: %v", errno)
	}
	if errno := f.enter(nil, long); errno != syscall.ENAMETOOLONG {
		t.Fatalf("no namespace, long name: %v", errno)
	}
	d := &dirBase{nodeBase: nodeBase{f}}
	if errno := d.refuse("a", long); errno != syscall.ENAMETOOLONG {
		t.Fatalf("refuse of a long name: %v", errno)
	}
	if errno := d.refuse("a"); errno != syscall.EPERM {
		t.Fatalf("refuse: %v, want EPERM", errno)
	}
	// A directory of a deleted namespace refuses as the gate does.
	gone, live := &dirBase{nodeBase{f}, old}, &dirBase{nodeBase{f}, again}
	if errno := gone.refuse("a"); errno != syscall.ENOENT {
		t.Fatalf("refuse in a deleted namespace: %v, want ENOENT", errno)
	}
	if errno := live.refuse("a"); errno != syscall.EPERM {
		t.Fatalf("refuse in the namespace made again: %v, want EPERM", errno)
	}
}

// A deleted namespace's scratch directories and removed layout files go
// with it: the daemon keeps nothing of it until a remount.
func TestNamespaceDeletedForgetsScratch(t *testing.T) {
	f := &filesystem{}
	f.scratch.add(scratchKey{3, "ingest"})
	f.scratch.add(scratchKey{4, "ingest"})
	f.scratch.hide(scratchKey{3, "index.json"})
	f.namespaceDeleted(metadata.Namespace{Name: "dev", ID: 3})
	if got := f.scratch.list(3); len(got) != 0 {
		t.Fatalf("scratch dirs of the deleted namespace: %v", got)
	}
	if f.scratch.isHidden(scratchKey{3, "index.json"}) {
		t.Fatal("a removed index.json of the deleted namespace is still remembered")
	}
	if got := f.scratch.list(4); len(got) != 1 {
		t.Fatalf("another namespace's scratch dirs: %v, want [ingest]", got)
	}
}
