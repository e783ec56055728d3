package metadata

import (
	"github.com/nsfs/nsfs/names"
	"github.com/opencontainers/go-digest"
	bolt "go.etcd.io/bbolt"
)

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

// The getters below read what the mount never needs whole (a stat takes
// the Stat* forms, labels are read one by one): the tests use them to see
// a record at once.

// GetBlob returns a blob ns can see, with its labels (ErrNotFound
// otherwise).
func (db *DB) GetBlob(ns string, d digest.Digest) (Blob, error) {
	return db.getBlob(ns, d, true)
}

// GetImage returns one image with its labels (ErrNotFound).
func (db *DB) GetImage(ns, ref string) (Image, error) {
	return db.getImage(ns, ref, true)
}

// ListImages returns every image of ns sorted by name.
func (db *DB) ListImages(ns string) ([]Image, error) {
	var list []Image
	err := db.bolt.View(func(tx *bolt.Tx) error {
		nsb, err := namespaceBucket(tx, ns)
		if err != nil {
			return err
		}
		images, err := subBucket(nsData(nsb), bucketImages)
		if err != nil {
			return err
		}
		return images.ForEach(func(k, v []byte) error {
			rec, err := decodeImageRecord(v)
			if err != nil {
				return err
			}
			list = append(list, toImage(nsb, ns, string(k), rec, true))
			return nil
		})
	})
	return list, err
}

// GetNamespace returns one namespace with its labels (ErrNotFound).
func (db *DB) GetNamespace(name string) (Namespace, error) {
	return db.getNamespace(name, true)
}

// The store's name and label rules are names'; metadata calls them there.
// Its tests check them under these short names, as the store applies them.
const (
	MaxLabelSize  = names.MaxLabelSize
	MaxLabelsSize = names.MaxLabelsSize
)

var (
	LabelSize         = names.LabelSize
	LabelsSize        = names.LabelsSize
	ValidateLabel     = names.ValidateLabel
	ValidateRef       = names.ValidateRef
	ValidateNamespace = names.ValidateNamespace
	ValidateDigest    = names.ValidateDigest
)
