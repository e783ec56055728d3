package metadata

// commitMode chooses how writes commit, for benchmarks to compare the
// group commit (batch.go) with the alternatives it replaced.
type commitMode int

const (
	groupCommit     commitMode = iota // batch: shared commits, no delay
	commitEach                        // one transaction and fsync per write
	commitBoltBatch                   // bbolt's DB.Batch (MaxBatchDelay 10 ms)
)

// setCommitMode makes db's writes commit as m says. Set it before the
// first write: the field is not guarded.
func (db *DB) setCommitMode(m commitMode) {
	switch m {
	case commitEach:
		db.commitForTests = db.bolt.Update
	case commitBoltBatch:
		db.commitForTests = db.bolt.Batch
	default:
		db.commitForTests = nil
	}
}
