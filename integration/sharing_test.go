package integration

import (
	"fmt"
	"maps"
	"sync"
	"testing"
)

// Under the default policy (shared) a namespace can see every blob the
// store holds, by name, but lists only what it holds.
func TestSharedContent(t *testing.T) {
	t.Parallel()
	d := startNsfs(t)
	m := d.mnt
	mustRun(t, m, "mkdir", "ns/foo")
	img := newImage(81, "amd64", 4000)
	d.putImage(t, "default", "app:v1", img)

	layer := blobPath("foo", img.layers[0].hex())
	assertOutput(t, "sha256sum of default's layer through foo", mustRun(t, m, "sha256sum", layer), img.layers[0].hex()+"  "+layer+"\n")
	assertOutput(t, "ls ns/foo/blobs/sha256 (sees, does not hold)", mustRun(t, m, "ls", "ns/foo/blobs/sha256"), "")

	// A manifest written straight into foo claims default's blobs.
	onDisk := rootBlobFiles(t, d.root)
	d.putManifest(t, "foo", "app:v1", img.manifest.data)
	assertOutput(t, "ls ns/foo/blobs/sha256 after the image", mustRun(t, m, "ls", "ns/foo/blobs/sha256"), lines(img.hexes()...))
	if after := rootBlobFiles(t, d.root); !maps.Equal(onDisk, after) {
		t.Errorf("claiming blobs changed ROOT/blobs/sha256:\nbefore %v\nafter  %v", onDisk, after)
	}
	// default lets go of everything; foo keeps the files alive.
	mustRun(t, m, "rm", imagePath("default", "app:v1"))
	assertOutput(t, "ls ns/default/blobs/sha256", mustRun(t, m, "ls", "ns/default/blobs/sha256"), "")
	if after := rootBlobFiles(t, d.root); !maps.Equal(onDisk, after) {
		t.Errorf("ROOT/blobs/sha256 changed although foo holds the blobs:\nbefore %v\nafter  %v", onDisk, after)
	}
	assertOutput(t, "sha256sum in default of foo's layer", mustRun(t, m, "sha256sum", blobPath("default", img.layers[0].hex())),
		img.layers[0].hex()+"  "+blobPath("default", img.layers[0].hex())+"\n")
}

// What one namespace does to the store shows at once in another's view,
// although the kernel caches lookups per directory.
func TestSharedViewFollowsOtherNamespaces(t *testing.T) {
	t.Parallel()
	d := startNsfs(t)
	m := d.mnt
	mustRun(t, m, "mkdir", "ns/foo")
	b := blob{data: randomBytes(82, 1234)}
	inFoo := blobPath("foo", b.hex())

	mustFail(t, m, "No such file or directory", "stat", inFoo)
	d.putBlob(t, "default", b)
	assertOutput(t, "stat in foo of a blob default just wrote", mustRun(t, m, "stat", "-c", "%s", inFoo), "1234\n")

	mustRun(t, m, "rm", blobPath("default", b.hex()))
	mustFail(t, m, "No such file or directory", "stat", inFoo)
	mustFail(t, m, "No such file or directory", "cat", inFoo)
}

func TestIsolatedContent(t *testing.T) {
	t.Parallel()
	d := startNsfs(t, isolated())
	m := d.mnt
	mustRun(t, m, "mkdir", "ns/foo", "ns/bar")
	img := newImage(83, "amd64", 3000, 5000)
	d.putImage(t, "default", "docker.io/library/app:v1", img)
	mustRun(t, m, "mkdir", "-p", "ns/foo/images/docker.io/library", "ns/bar/images/docker.io/library")

	// foo cannot see default's blobs: an image naming them is
	// incomplete, and naming them grants no read of them.
	for _, b := range img.blobs() {
		mustFail(t, m, "No such file or directory", "stat", blobPath("foo", b.hex()))
	}
	mustRun(t, m, "cp", imagePath("default", "docker.io/library/app:v1"), imagePath("foo", "docker.io/library/app:v1"))
	for _, b := range append([]blob{img.config}, img.layers...) {
		mustFail(t, m, "No such file or directory", "stat", blobPath("foo", b.hex()))
		mustFail(t, m, "No such file or directory", "cat", blobPath("foo", b.hex()))
	}
	assertOutput(t, "ls ns/foo/blobs/sha256 of the incomplete image", mustRun(t, m, "ls", "ns/foo/blobs/sha256"), lines(img.manifest.hex()))

	// foo sends the bytes itself: verified, stored once.
	onDisk := rootBlobFiles(t, d.root)
	mustFail(t, m, "Bad message", "cp", writeTemp(t, "wrong", []byte("wrong")), blobPath("foo", img.config.hex()))
	for _, b := range append([]blob{img.config}, img.layers...) {
		d.putBlob(t, "foo", b)
	}
	if after := rootBlobFiles(t, d.root); !maps.Equal(onDisk, after) {
		t.Errorf("blobs foo sent again changed ROOT/blobs/sha256 (they were there already):\nbefore %v\nafter  %v", onDisk, after)
	}
	if ingests := ingestFiles(t, d.root); len(ingests) != 0 {
		t.Errorf("ROOT/ingest holds %v", ingests)
	}
	// The image claimed them as they arrived.
	assertOutput(t, "ls ns/foo/blobs/sha256", mustRun(t, m, "ls", "ns/foo/blobs/sha256"), lines(img.hexes()...))
	mustFail(t, m, "Device or resource busy", "rm", blobPath("foo", img.config.hex()))

	// A namespace labelled shareable lends its blobs to everyone: bar's
	// incomplete image claims them then.
	mustRun(t, m, "cp", imagePath("default", "docker.io/library/app:v1"), imagePath("bar", "docker.io/library/app:v1"))
	assertOutput(t, "ls ns/bar/blobs/sha256 of the incomplete image", mustRun(t, m, "ls", "ns/bar/blobs/sha256"), lines(img.manifest.hex()))
	mustRun(t, m, "setfattr", "-n", "user.containerd.io/namespace.shareable", "-v", "true", "ns/default")
	assertOutput(t, "ls ns/bar/blobs/sha256", mustRun(t, m, "ls", "ns/bar/blobs/sha256"), lines(img.hexes()...))
	assertOutput(t, "stat in bar of a layer it could not see before", mustRun(t, m, "stat", "-c", "%s", blobPath("bar", img.layers[1].hex())), "5000\n")
	if after := rootBlobFiles(t, d.root); !maps.Equal(onDisk, after) {
		t.Errorf("claiming shareable blobs changed ROOT/blobs/sha256:\nbefore %v\nafter  %v", onDisk, after)
	}
}

// TestConcurrentCopiesAndRemovals: many namespaces claim and drop the same
// blobs at once; the store ends consistent and the files stay exactly as
// long as someone holds them.
func TestConcurrentCopiesAndRemovals(t *testing.T) {
	t.Parallel()
	d := startNsfs(t)
	m := d.mnt
	img := newImage(84, "amd64", 30000, 40000)
	d.putImage(t, "default", "app:v1", img)
	onDisk := rootBlobFiles(t, d.root)
	const n = 8
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("tenant%d", i)
		mustRun(t, m, "mkdir", "ns/"+names[i])
	}

	var wg sync.WaitGroup
	results := make(chan result, 4*n)
	for _, ns := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results <- run(t, m, "cp", imagePath("default", "app:v1"), imagePath(ns, "app:v1"))
			results <- run(t, m, "ln", imagePath(ns, "app:v1"), imagePath(ns, "app:latest"))
		}()
	}
	wg.Wait()
	close(results)
	for r := range results {
		if r.code != 0 || r.stderr != "" {
			t.Errorf("concurrent copies: %s", r)
		}
	}
	for _, ns := range names {
		assertOutput(t, "ls ns/"+ns+"/blobs/sha256", mustRun(t, m, "ls", "ns/"+ns+"/blobs/sha256"), lines(img.hexes()...))
	}
	if after := rootBlobFiles(t, d.root); !maps.Equal(onDisk, after) {
		t.Errorf("concurrent claims changed ROOT/blobs/sha256:\nbefore %v\nafter  %v", onDisk, after)
	}

	// default lets go while the tenants remove theirs, all at once.
	results = make(chan result, n+1)
	wg.Add(1)
	go func() { defer wg.Done(); results <- run(t, m, "rm", imagePath("default", "app:v1")) }()
	for _, ns := range names {
		wg.Add(1)
		go func() { defer wg.Done(); results <- run(t, m, "rm", "-rf", "ns/"+ns) }()
	}
	wg.Wait()
	close(results)
	for r := range results {
		if r.code != 0 || r.stderr != "" {
			t.Errorf("concurrent removals: %s", r)
		}
	}
	assertOutput(t, "ls ns", mustRun(t, m, "ls", "ns"), lines("default"))
	assertOutput(t, "ls ns/default/blobs/sha256", mustRun(t, m, "ls", "ns/default/blobs/sha256"), "")
	if files := rootBlobFiles(t, d.root); len(files) != 0 {
		t.Errorf("ROOT/blobs/sha256 holds %v after every holder let go", sortedKeys(files))
	}
	mustRun(t, m, "rmdir", "ns/default")
}
