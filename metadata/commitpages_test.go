package metadata

import (
	"fmt"
	"testing"
)

// The commits of a namespace's own changes write one page besides the
// meta page (nstop.go): a label of a namespace that has images, a mkdir
// and an rmdir each rewrite only the top page, where nsdir/ and the
// namespace records live inline. A commit's pages, written far apart in
// the file, cost the disk a request each before its fdatasync.
func TestNamespaceCommitsWriteOnePage(t *testing.T) {
	db := openTestDB(t, Options{})
	img := seedImage(t, db, "default", "src")
	var refs []string
	for i := 0; i < 2000; i++ {
		refs = append(refs, fmt.Sprintf("many/img-%05d", i))
	}
	putImages(t, db, "default", img.manifest, refs)
	written := func() int64 {
		stats := db.bolt.Stats()
		return stats.TxStats.GetWrite()
	}
	pages := func(what string, op func() error) {
		t.Helper()
		before := written()
		if err := op(); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if got := written() - before; got != 2 {
			t.Errorf("%s wrote %d pages, want 2 (the top page and the meta page)", what, got)
		}
	}
	for i := 0; i < 3; i++ { // again: pages freed by one commit are reused by the next
		pages("label set on default", func() error {
			return db.Labels().Set(Object{Namespace: "default"}, "team", fmt.Sprint(i), nil)
		})
		pages("mkdir", func() error { _, err := db.Namespaces().Create("dev", nil); return err })
		pages("label set on an empty namespace", func() error {
			return db.Labels().Set(Object{Namespace: "dev"}, "team", "infra", nil)
		})
		pages("rmdir", func() error { _, err := db.Namespaces().Delete("dev"); return err })
	}
	checkInvariants(t, db)
}
