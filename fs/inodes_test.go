package fs

import (
	"testing"

	"github.com/opencontainers/go-digest"
)

func TestDirInodeIsStableUntilForgotten(t *testing.T) {
	tab := newInodeTable()
	a := tab.dir(7, "images/docker.io")
	if again := tab.dir(7, "images/docker.io"); again != a {
		t.Fatalf("same directory got %d, then %d", a, again)
	}
	if a < firstTableIno {
		t.Errorf("table number %d is below %d, where database IDs live", a, uint64(firstTableIno))
	}
	if other := tab.dir(8, "images/docker.io"); other == a {
		t.Errorf("the same path in another namespace got the same number %d", a)
	}
	if other := tab.dir(7, "images"); other == a {
		t.Errorf("another path got the same number %d", a)
	}

	tab.forget(7, "images/docker.io")
	if after := tab.dir(7, "images/docker.io"); after == a {
		t.Errorf("after rmdir the directory got its old number %d again: the kernel would reuse its dead inode", a)
	}
}

func TestForgetNamespaceDropsOnlyThatNamespace(t *testing.T) {
	tab := newInodeTable()
	gone := []uint64{tab.dir(3, "images"), tab.dir(3, "blobs"), tab.dir(3, "images/a/b")}
	kept := tab.dir(4, "images")
	tab.forgetNamespace(3)
	for i, path := range []string{"images", "blobs", "images/a/b"} {
		if n := tab.dir(3, path); n == gone[i] {
			t.Errorf("%s of a deleted namespace kept number %d", path, n)
		}
	}
	if n := tab.dir(4, "images"); n != kept {
		t.Errorf("another namespace's images/ changed from %d to %d", kept, n)
	}
}

func TestDirNumbersAreNeverHandedOutTwice(t *testing.T) {
	tab := newInodeTable()
	seen := map[uint64]bool{}
	for i := 0; i < 100; i++ {
		for _, n := range []uint64{tab.dir(2, "images/"+string(rune('a'+i))), tab.dir(1, string(rune('a'+i%26))+"/x"+string(rune(i)))} {
			if seen[n] {
				t.Fatalf("number %d handed out twice", n)
			}
			seen[n] = true
		}
	}
}

func TestBlobIno(t *testing.T) {
	d1 := digest.FromString("one")
	d2 := digest.FromString("two")
	n := blobIno(3, d1)
	if n&blobInoBit == 0 {
		t.Errorf("blob number %#x lacks the top bit that keeps it apart from table numbers", n)
	}
	if n == ^uint64(0) {
		t.Errorf("blob number is go-fuse's reserved %#x", n)
	}
	if again := blobIno(3, d1); again != n {
		t.Errorf("same blob got %#x, then %#x", n, again)
	}
	if other := blobIno(4, d1); other == n {
		t.Errorf("the same blob in two namespaces got one number %#x", n)
	}
	if other := blobIno(3, d2); other == n {
		t.Errorf("two blobs got one number %#x", n)
	}
}

func TestRecordInoClearsFixedNumbers(t *testing.T) {
	// The first namespace and image IDs are 1 and 2: unshifted they would
	// be the root's and ns/'s numbers.
	for id := uint64(1); id < 4; id++ {
		if n := recordIno(id); n == rootIno || n == namespacesIno {
			t.Errorf("database ID %d maps to the fixed number %d", id, n)
		}
	}
}
