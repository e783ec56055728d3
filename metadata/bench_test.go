package metadata

import (
	"fmt"
	"os"
	"syscall"
	"testing"

	"github.com/opencontainers/go-digest"
)

func BenchmarkCreateDeleteNamespace(b *testing.B) {
	db := openTestDB(b, Options{})
	defer reportPageWrites(b, db)()
	for i := 0; b.Loop(); i++ {
		name := fmt.Sprintf("ns%d", i)
		if _, err := db.Namespaces().Create(name, nil); err != nil {
			b.Fatal(err)
		}
		if _, err := db.Namespaces().Delete(name); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSetLabel(b *testing.B) {
	db := openTestDB(b, Options{})
	o := Object{Namespace: "default"}
	for i := 0; b.Loop(); i++ {
		if err := db.Labels().Set(o, "key", fmt.Sprint(i), nil); err != nil {
			b.Fatal(err)
		}
	}
}

// reportPageWrites reports, when the function it returns is called at the
// end of a benchmark, the pages bbolt wrote per operation (the meta page
// included): what each commit flushes before its fdatasyncs.
func reportPageWrites(b *testing.B, db *DB) func() {
	writes := func() int64 {
		stats := db.bolt.Stats()
		return stats.TxStats.GetWrite()
	}
	before := writes()
	return func() {
		written := writes() - before
		b.ReportMetric(float64(written)/float64(b.N), "pages/op")
	}
}

// setup10k puts 10,000 refs in directory many/ and, elsewhere, 10,000
// more in other directories.
func setup10k(b *testing.B) *DB {
	db := openTestDB(b, Options{})
	img := seedImage(b, db, "default", "x")
	var refs []string
	for i := 0; i < 10000; i++ {
		refs = append(refs, fmt.Sprintf("many/img-%05d", i), fmt.Sprintf("other/d%02d/img-%05d", i%100, i))
	}
	putImages(b, db, "default", img.manifest, refs)
	return db
}

func BenchmarkReadImageDir10k(b *testing.B) {
	db := setup10k(b)
	for b.Loop() {
		entries, err := db.Images().ReadDir("default", "many")
		if err != nil || len(entries) != 10000 {
			b.Fatal(len(entries), err)
		}
	}
}

// BenchmarkReadImageDirOf100Subdirs lists other/: 10,000 refs below, in
// 100 subdirectories, so it costs about 100 seeks.
func BenchmarkReadImageDirOf100Subdirs(b *testing.B) {
	db := setup10k(b)
	for b.Loop() {
		entries, err := db.Images().ReadDir("default", "other")
		if err != nil || len(entries) != 100 {
			b.Fatal(len(entries), err)
		}
	}
}

func BenchmarkLookupImagePath(b *testing.B) {
	db := setup10k(b)
	for i := 0; b.Loop(); i++ {
		path := fmt.Sprintf("many/img-%05d", i%10000)
		if i%2 == 1 {
			path = fmt.Sprintf("other/d%02d", i%100)
		}
		if _, err := db.Images().Lookup("default", path); err != nil {
			b.Fatal(err)
		}
	}
}

// labelledBlob writes a blob into default and gives it a few labels, as
// containerd gives layers (uncompressed digest, gc refs).
func labelledBlob(b *testing.B, db *DB) Object {
	d := mustWriteBlob(b, db, "default", []byte("a layer")).Digest
	o := Object{Namespace: "default", Blob: d}
	for i := 0; i < 3; i++ {
		if err := db.Labels().Set(o, fmt.Sprintf("containerd.io/label%d", i), "sha256:0123456789abcdef", nil); err != nil {
			b.Fatal(err)
		}
	}
	return o
}

// BenchmarkGetBlob is a blob with its labels.
func BenchmarkGetBlob(b *testing.B) {
	db := openTestDB(b, Options{})
	o := labelledBlob(b, db)
	for b.Loop() {
		if _, err := db.GetBlob("default", o.Blob); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkStatBlob is what every lookup and getattr of a blob costs.
func BenchmarkStatBlob(b *testing.B) {
	db := openTestDB(b, Options{})
	o := labelledBlob(b, db)
	for b.Loop() {
		if _, err := db.Content().Stat("default", o.Blob); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLabel is what a getxattr of a blob's label costs.
func BenchmarkLabel(b *testing.B) {
	db := openTestDB(b, Options{})
	o := labelledBlob(b, db)
	for b.Loop() {
		if v, err := db.Labels().Get(o, "containerd.io/label1"); err != nil || v == "" {
			b.Fatal(v, err)
		}
	}
}

// BenchmarkStatNamespace is what every getattr of ns/<name> costs.
func BenchmarkStatNamespace(b *testing.B) {
	db := openTestDB(b, Options{})
	for i := 0; i < 3; i++ {
		if err := db.Labels().Set(Object{Namespace: "default"}, fmt.Sprintf("team%d", i), "infra", nil); err != nil {
			b.Fatal(err)
		}
	}
	for b.Loop() {
		if _, err := db.Namespaces().Stat("default"); err != nil {
			b.Fatal(err)
		}
	}
}

// The benchmarks below are the metadata-only counterparts of the rows of
// `make bench` (bench/main.go): what each workload costs without FUSE.
//
//	go test -bench . -run '^$' ./metadata/

// BenchmarkSetGetLabel is a label set+get pair (setfattr + getfattr of a
// namespace label): one durable commit and one read.
func BenchmarkSetGetLabel(b *testing.B) {
	db := openTestDB(b, Options{})
	defer reportPageWrites(b, db)()
	o := Object{Namespace: "default"}
	for i := 0; b.Loop(); i++ {
		v := fmt.Sprint(i)
		if err := db.Labels().Set(o, "bench", v, nil); err != nil {
			b.Fatal(err)
		}
		if got, err := db.Labels().Get(o, "bench"); err != nil || got != v {
			b.Fatal(got, err)
		}
	}
}

// BenchmarkLookupImage is what a stat of an image costs once the kernel's
// cache has expired (a FUSE LOOKUP): one image of 10,000 in a directory.
func BenchmarkLookupImage(b *testing.B) {
	db := setup10k(b)
	for i := 0; b.Loop(); i++ {
		if e, err := db.Images().Lookup("default", fmt.Sprintf("many/img-%05d", i%10000)); err != nil || e.Image == nil {
			b.Fatal(e, err)
		}
	}
}

// BenchmarkLookupMissing is a stat of a name that is not there, the
// first time (the kernel then remembers the miss for a second).
func BenchmarkLookupMissing(b *testing.B) {
	db := setup10k(b)
	for b.Loop() {
		if _, err := db.Images().Lookup("default", "many/missing"); !IsNotFound(err) {
			b.Fatal(err)
		}
	}
}

// BenchmarkFdatasync is the floor of every durable commit: a 4 KiB
// write and fdatasync of a file beside meta.db (a bbolt commit makes two:
// its pages, then its meta page). `make bench` measures the same on the
// store's disk and compares the commits through the mount with it.
func BenchmarkFdatasync(b *testing.B) {
	f, err := os.Create(b.TempDir() + "/fdatasync")
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	page := make([]byte, 4096)
	for i := 0; b.Loop(); i++ {
		if _, err := f.WriteAt(page, int64(i%16)*4096); err != nil {
			b.Fatal(err)
		}
		if err := syscall.Fdatasync(int(f.Fd())); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReadImageDirAndLookup10k is `ls -l` of 10,000 refs as the store
// saw it without READDIRPLUS: the listing, then a lookup per entry (the
// mount now answers ls -l's lookups from the listing: ReadImageDir10k).
func BenchmarkReadImageDirAndLookup10k(b *testing.B) {
	db := setup10k(b)
	for b.Loop() {
		entries, err := db.Images().ReadDir("default", "many")
		if err != nil || len(entries) != 10000 {
			b.Fatal(len(entries), err)
		}
		for _, e := range entries {
			if _, err := db.Images().Lookup("default", e.Path); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkPutImageInOtherNamespace is `cp` of an image into another
// namespace: ImageStore.Put of a manifest whose blobs the store holds (no blob
// bytes), a new ref each time.
func BenchmarkPutImageInOtherNamespace(b *testing.B) {
	db := openTestDB(b, Options{})
	img := seedImage(b, db, "default", "src")
	if _, err := db.Images().Put(ImageWrite{Namespace: "default", Ref: "src", Manifest: img.manifest}); err != nil {
		b.Fatal(err)
	}
	if _, err := db.Namespaces().Create("other", nil); err != nil {
		b.Fatal(err)
	}
	for i := 0; b.Loop(); i++ {
		if _, err := db.Images().Put(ImageWrite{Namespace: "other", Ref: fmt.Sprintf("cp-%d", i), Manifest: img.manifest}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSecondNamespacePull is what a pull into a new namespace costs
// the store when it already holds every blob: the namespace, the two
// directories of the ref (mkdir -p), and the image (no blob bytes).
func BenchmarkSecondNamespacePull(b *testing.B) {
	db := openTestDB(b, Options{})
	img := seedImage(b, db, "default", "src")
	if _, err := db.Images().Put(ImageWrite{Namespace: "default", Ref: "src", Manifest: img.manifest}); err != nil {
		b.Fatal(err)
	}
	for i := 0; b.Loop(); i++ {
		ns := fmt.Sprintf("second%d", i)
		if _, err := db.Namespaces().Create(ns, nil); err != nil {
			b.Fatal(err)
		}
		for _, dir := range []string{"registry.local", "registry.local/bench"} {
			if err := db.Images().MakeDir(ns, dir); err != nil {
				b.Fatal(err)
			}
		}
		if _, err := db.Images().Put(ImageWrite{Namespace: ns, Ref: "registry.local/bench/big:v1", Manifest: img.manifest}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkWriteBlob64MiB is a blob ingest (hash, write, fsync, publish,
// commit), then its removal (ContentStore.Delete, which deletes the file);
// MB/s.
func BenchmarkWriteBlob64MiB(b *testing.B) {
	db := openTestDB(b, Options{})
	data := make([]byte, 64<<20)
	for i := range data {
		data[i] = byte(i * 7 / 5)
	}
	d := digest.FromBytes(data)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		w, err := db.Content().Writer("default", 0, d)
		if err != nil {
			b.Fatal(err)
		}
		for off := 0; off < len(data); off += 1 << 20 {
			if _, err := w.Write(data[off : off+1<<20]); err != nil {
				b.Fatal(err)
			}
		}
		if err := w.Commit(); err != nil {
			b.Fatal(err)
		}
		if err := db.Content().Delete("default", d); err != nil {
			b.Fatal(err)
		}
	}
}

// fill100k puts 100,000 images in 100 namespaces bench000 … bench099 (the
// RSS row's store).
func fill100k(b *testing.B, db *DB) {
	var refs []string
	for i := 0; i < 1000; i++ {
		refs = append(refs, fmt.Sprintf("img-%04d", i))
	}
	for i := 0; i < 100; i++ {
		ns := fmt.Sprintf("bench%03d", i)
		if _, err := db.Namespaces().Create(ns, nil); err != nil {
			b.Fatal(err)
		}
		putImages(b, db, ns, seedImage(b, db, ns, ns).manifest, refs)
	}
}

// BenchmarkListAll100kImages lists 100,000 images in 100 namespaces, as the
// RSS row of make bench does through the mount; its B/op is what the
// daemon allocates for that walk outside go-fuse's tree.
func BenchmarkListAll100kImages(b *testing.B) {
	db := openTestDB(b, Options{})
	fill100k(b, db)
	b.ReportAllocs()
	for b.Loop() {
		n := 0
		for i := 0; i < 100; i++ {
			entries, err := db.Images().ReadDir(fmt.Sprintf("bench%03d", i), "")
			if err != nil {
				b.Fatal(err)
			}
			n += len(entries)
		}
		if n != 100000 {
			b.Fatal(n)
		}
	}
}

// BenchmarkOpen100kImages is a mount's open of the store of 100,000 images
// (page check, and bbolt's walk that rebuilds the free page list, which
// is not written at commits: boltOptions); meta.db-B/image is the file's
// size per image, the meta.db row of make bench.
func BenchmarkOpen100kImages(b *testing.B) {
	dir := b.TempDir()
	db, err := Open(dir, Options{})
	if err != nil {
		b.Fatal(err)
	}
	fill100k(b, db)
	db.Close()
	fi, err := os.Stat(metaPath(dir))
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		db, err := Open(dir, Options{})
		if err != nil {
			b.Fatal(err)
		}
		db.Close()
	}
	b.ReportMetric(float64(fi.Size())/100000, "meta.db-B/image")
}

// TestPopulateBenchStore is not a test but the loader of `make bench`
// (bench/main.go): it fills the closed store at $NSFS_BENCH_STORE through
// this package, many refs per transaction (ImageStore.Put would take one
// fsynced commit per image: minutes for 100,000), before the store is mounted.
// $NSFS_BENCH_POPULATE says what to put there:
//
//   - listing: namespace default with image src and the 10,000 images
//     many/img-00000 … many/img-09999, and an empty namespace other;
//   - rss: 100 namespaces bench000 … bench099 of 1,000 images each
//     (img-0000 … img-0999), 100,000 images in all.
//
// Without $NSFS_BENCH_STORE it skips.
func TestPopulateBenchStore(t *testing.T) {
	root := os.Getenv("NSFS_BENCH_STORE")
	if root == "" {
		t.Skip("NSFS_BENCH_STORE is not set: this is bench/main.go's loader")
	}
	db, err := Open(root, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	refs := func(format string, n int) []string {
		var refs []string
		for i := 0; i < n; i++ {
			refs = append(refs, fmt.Sprintf(format, i))
		}
		return refs
	}
	switch what := os.Getenv("NSFS_BENCH_POPULATE"); what {
	case "listing":
		img := seedImage(t, db, "default", "src")
		putImages(t, db, "default", img.manifest, append([]string{"src"}, refs("many/img-%05d", 10000)...))
		if _, err := db.Namespaces().Create("other", nil); err != nil {
			t.Fatal(err)
		}
	case "rss":
		for i := 0; i < 100; i++ {
			ns := fmt.Sprintf("bench%03d", i)
			if _, err := db.Namespaces().Create(ns, nil); err != nil {
				t.Fatal(err)
			}
			img := seedImage(t, db, ns, ns)
			putImages(t, db, ns, img.manifest, refs("img-%04d", 1000))
		}
	default:
		t.Fatalf("NSFS_BENCH_POPULATE=%q: want listing or rss", what)
	}
}
