package metadata

import (
	"fmt"
	"testing"
)

func BenchmarkCreateDeleteNamespace(b *testing.B) {
	db := openTestDB(b, Options{})
	for i := 0; b.Loop(); i++ {
		name := fmt.Sprintf("ns%d", i)
		if _, err := db.CreateNamespace(name, nil); err != nil {
			b.Fatal(err)
		}
		if _, err := db.DeleteNamespace(name); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSetLabel(b *testing.B) {
	db := openTestDB(b, Options{})
	o := Object{Namespace: "default"}
	for i := 0; b.Loop(); i++ {
		if err := db.SetLabel(o, "key", fmt.Sprint(i), nil); err != nil {
			b.Fatal(err)
		}
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
		entries, err := db.ReadImageDir("default", "many")
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
		entries, err := db.ReadImageDir("default", "other")
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
		if _, err := db.LookupImagePath("default", path); err != nil {
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
		if err := db.SetLabel(o, fmt.Sprintf("containerd.io/label%d", i), "sha256:0123456789abcdef", nil); err != nil {
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
		if _, err := db.StatBlob("default", o.Blob); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLabel is what a getxattr of a blob's label costs.
func BenchmarkLabel(b *testing.B) {
	db := openTestDB(b, Options{})
	o := labelledBlob(b, db)
	for b.Loop() {
		if v, err := db.Label(o, "containerd.io/label1"); err != nil || v == "" {
			b.Fatal(v, err)
		}
	}
}

// BenchmarkStatNamespace is what every getattr of ns/<name> costs.
func BenchmarkStatNamespace(b *testing.B) {
	db := openTestDB(b, Options{})
	for i := 0; i < 3; i++ {
		if err := db.SetLabel(Object{Namespace: "default"}, fmt.Sprintf("team%d", i), "infra", nil); err != nil {
			b.Fatal(err)
		}
	}
	for b.Loop() {
		if _, err := db.StatNamespace("default"); err != nil {
			b.Fatal(err)
		}
	}
}
