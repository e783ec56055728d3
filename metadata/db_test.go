package metadata

import (
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestReopen(t *testing.T) {
	root := t.TempDir()
	db, err := Open(root, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Namespaces().Create("foo", map[string]string{"k": "v"}); err != nil {
		t.Fatal(err)
	}
	img := seedImage(t, db, "foo", "x")
	put, err := db.Images().Put(ImageWrite{Namespace: "foo", Ref: "docker.io/x", Manifest: img.manifest})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Images().MakeDir("foo", "quay.io"); err != nil {
		t.Fatal(err)
	}
	if err := db.Labels().Set(Object{Namespace: "foo", Blob: img.layer.Digest}, "l", "w", nil); err != nil {
		t.Fatal(err)
	}
	before := dump(t, db)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	db, err = Open(root, Options{})
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer db.Close()
	if after := dump(t, db); after != before {
		t.Fatalf("the reopened store differs:\n%s\nthen\n%s", before, after)
	}
	got, err := db.GetImage("foo", "docker.io/x")
	if err != nil || got.ID != put.ID || got.Target.Digest != put.Target.Digest {
		t.Fatalf("image after reopen: %+v %v", got, err)
	}
	list, _ := db.Namespaces().List()
	if len(list) != 2 {
		t.Fatalf("namespaces after reopen: %+v (default must not be re-created or lost)", list)
	}
	// IDs keep counting from where they were.
	ns, err := db.Namespaces().Create("bar", nil)
	if err != nil || ns.ID <= put.ID {
		t.Fatalf("new ID %d after reopen, last was %d (%v)", ns.ID, put.ID, err)
	}
	if _, err := db.Namespaces().Delete("default"); err != nil {
		t.Fatal(err)
	}
	db.Close()
	// A store whose default namespace was deleted does not get it back.
	db, err = Open(root, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.GetNamespace("default"); !IsNotFound(err) {
		t.Fatalf("default came back on reopen: %v", err)
	}
}

func TestOpenLocked(t *testing.T) {
	root := t.TempDir()
	db, err := Open(root, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	start := time.Now()
	_, err = Open(root, Options{})
	elapsed := time.Since(start)
	wantKind(t, "second Open", err, IsLocked, "ErrLocked")
	if elapsed > 1500*time.Millisecond {
		t.Fatalf("second Open took %v", elapsed)
	}
	want := fmt.Sprintf("store %s is already in use by another nsfs (%s/meta.db is locked)", root, root)
	if !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("message %q, want %q", err, want)
	}
	_, err = Open(root, Options{Sharing: "bogus"})
	wantKind(t, "bogus sharing", err, IsInvalidArgument, "ErrInvalidArgument")
}

// Several goroutines run random operations on a few namespaces, refs and
// blobs; afterwards records and files must agree (checkInvariants).
func TestConcurrentOperations(t *testing.T) {
	for _, sharing := range []Sharing{SharingShared, SharingIsolated} {
		t.Run(string(sharing), func(t *testing.T) {
			testConcurrent(t, sharing)
		})
	}
}

func testConcurrent(t *testing.T, sharing Sharing) {
	db := openTestDB(t, Options{Sharing: sharing})
	namespaces := []string{"default", "a", "b", "tmp"}
	for _, ns := range namespaces[1:3] {
		if _, err := db.Namespaces().Create(ns, nil); err != nil {
			t.Fatal(err)
		}
	}
	var contents [][]byte
	// 0-5 are configs and layers of the manifests, 6-8 only ever written.
	for i := 0; i < 9; i++ {
		contents = append(contents, []byte(fmt.Sprintf("blob %d", i)))
	}
	var manifests [][]byte
	for i := 0; i < 5; i++ {
		config := descriptor("", contents[i%3])
		manifests = append(manifests, manifestJSON(config, descriptor("", contents[3+i%3]), descriptor("", contents[3+(i+1)%3])))
	}
	manifests = append(manifests, indexJSON(descriptor("", manifests[0]), descriptor("", manifests[1])))
	refs := []string{"r0", "r1", "d/r2", "d/r3", "d", "d/r2/x", "t1", "t2", "d/t3"}

	// allowed are the error kinds random operations may meet.
	allowed := []func(error) bool{IsNotFound, IsExists, IsNotEmpty, IsInUse, IsIsDirectory, IsNotDirectory, IsCrossNamespace}
	var mu sync.Mutex
	succeeded := map[string]int{}
	check := func(op string, err error) {
		if err == nil {
			mu.Lock()
			succeeded[op]++
			mu.Unlock()
			return
		}
		for _, is := range allowed {
			if is(err) {
				return
			}
		}
		t.Errorf("%s: unexpected error %v", op, err)
	}

	const workers, ops = 4, 250
	var wg sync.WaitGroup
	for g := 0; g < workers; g++ {
		wg.Add(1)
		go func(seed uint64) {
			defer wg.Done()
			r := rand.New(rand.NewPCG(seed, 7))
			for i := 0; i < ops; i++ {
				ns := namespaces[r.IntN(len(namespaces))]
				ref := refs[r.IntN(len(refs))]
				switch r.IntN(11) {
				case 0, 1:
					data := contents[r.IntN(len(contents))]
					if r.IntN(4) == 0 {
						data = manifests[r.IntN(len(manifests))]
					}
					w, err := db.Content().Writer(ns, 0, digest.FromBytes(data))
					if err != nil {
						check("ContentStore.Writer", err)
						continue
					}
					w.Write(data)
					if r.IntN(8) == 0 {
						check("Abort", w.Abort())
					} else {
						check("Commit", w.Commit())
					}
				case 2, 3:
					_, err := db.Images().Put(ImageWrite{Namespace: ns, Ref: ref, Manifest: manifests[r.IntN(len(manifests))]})
					check("ImageStore.Put", err)
				case 4:
					check("ImageStore.Delete", db.Images().Delete(ns, ref))
				case 5:
					d := digest.FromBytes(contents[r.IntN(len(contents))])
					if held, _ := db.Content().List(ns); len(held) > 0 && r.IntN(2) == 0 {
						d = held[r.IntN(len(held))].Digest
					}
					check("ContentStore.Delete", db.Content().Delete(ns, d))
				case 6:
					check("ImageStore.Rename", db.Images().Rename(ns, ref, ns, refs[r.IntN(len(refs))], false))
				case 7:
					_, err := db.Images().Link(ns, ref, ns, refs[r.IntN(len(refs))])
					check("ImageStore.Link", err)
				case 8:
					if r.IntN(2) == 0 {
						_, err := db.Namespaces().Create("tmp", nil)
						check("NamespaceStore.Create", err)
					} else {
						// rm -rf ns/tmp, racing with the others' writes.
						images, _ := db.ListImages("tmp")
						for _, img := range images {
							check("ImageStore.Delete", db.Images().Delete("tmp", img.Name))
						}
						blobs, _ := db.Content().List("tmp")
						for _, b := range blobs {
							check("ContentStore.Delete", db.Content().Delete("tmp", b.Digest))
						}
						_, err := db.Namespaces().Delete("tmp")
						check("NamespaceStore.Delete", err)
					}
				case 9:
					value := ""
					if r.IntN(2) == 0 {
						value = "true"
					}
					check("LabelStore.Set", db.Labels().Set(Object{Namespace: "a"}, ShareableLabel, value, nil))
					check("LabelStore.Set", db.Labels().Set(Object{Namespace: ns, Blob: digest.FromBytes(contents[r.IntN(len(contents))])}, "k", value, nil))
					check("ImageStore.RemoveDir", db.Images().RemoveDir(ns, "d"))
				case 10:
					d := digest.FromBytes(contents[r.IntN(len(contents))])
					if f, err := db.Content().Open(ns, d); err == nil {
						data, _ := io.ReadAll(f)
						f.Close()
						if digest.FromBytes(data) != d {
							t.Errorf("ContentStore.Open(%s) read bytes of %s", d, digest.FromBytes(data))
						}
					} else {
						check("ContentStore.Open", err)
					}
					_, err := db.Images().ReadDir(ns, "")
					check("ImageStore.ReadDir", err)
					// Every blob file, however young, that no record
					// names: a file being published (recorded under
					// its digest's lock) must survive, which the
					// final invariants and ContentStore.Open's reads check. A
					// file whose last holder was just dropped may go
					// here rather than in its releaser.
					var stats GCStats
					check("CollectGarbage", db.collectBlobs(&stats))
				}
			}
		}(uint64(g))
	}
	wg.Wait()
	// The mix must really exercise the paths whose races matter.
	for _, op := range []string{"Commit", "ImageStore.Put", "ImageStore.Delete", "ContentStore.Delete", "ImageStore.Rename", "ImageStore.Link", "NamespaceStore.Delete"} {
		if succeeded[op] == 0 {
			t.Errorf("no %s succeeded (successes: %v)", op, succeeded)
		}
	}
	t.Logf("successes: %v", succeeded)
	checkInvariants(t, db)
	// Every image's target and claims are as ImageStore.Put would make them.
	for _, ns := range namespaces {
		images, err := db.ListImages(ns)
		if IsNotFound(err) {
			continue
		}
		for _, img := range images {
			if img.Target.Size == 0 || (img.Target.MediaType != ocispec.MediaTypeImageManifest && img.Target.MediaType != ocispec.MediaTypeImageIndex) {
				t.Errorf("image %s/%s has target %+v", ns, img.Name, img.Target)
			}
			if _, err := db.GetBlob(ns, img.Target.Digest); err != nil {
				t.Errorf("image %s/%s: its manifest blob: %v", ns, img.Name, err)
			}
		}
	}
}
