package metadata

import "testing"

// CommittedTx moves with every durable write, and only then.
func TestCommittedTxMovesWithEveryCommit(t *testing.T) {
	db := openTestDB(t, Options{})
	tx := func() uint64 {
		t.Helper()
		id, err := db.CommittedTx()
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	before := tx()
	if _, err := db.Namespaces().List(); err != nil {
		t.Fatal(err)
	}
	if got := tx(); got != before {
		t.Errorf("a read moved CommittedTx from %d to %d", before, got)
	}
	if _, err := db.Namespaces().Create("gen", nil); err != nil {
		t.Fatal(err)
	}
	afterCreate := tx()
	if afterCreate == before {
		t.Errorf("creating a namespace left CommittedTx at %d", before)
	}
	if err := db.Labels().Set(Object{Namespace: "gen"}, "k", "v", nil); err != nil {
		t.Fatal(err)
	}
	if got := tx(); got == afterCreate {
		t.Errorf("setting a label left CommittedTx at %d", got)
	}
}
