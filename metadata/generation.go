package metadata

import bolt "go.etcd.io/bbolt"

// CommittedTx names the store's state: the ID of the last write
// transaction committed (bbolt's, which grows with every commit). A
// caller that read something after CommittedTx returned n knows that what
// it read is still current for as long as CommittedTx returns n; fs/
// answers the lookups of a listing from the listing's snapshot only
// then. A read transaction: about a microsecond.
func (db *DB) CommittedTx() (uint64, error) {
	var id uint64
	err := db.bolt.View(func(tx *bolt.Tx) error {
		id = uint64(tx.ID())
		return nil
	})
	return id, err
}
