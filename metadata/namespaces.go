package metadata

import (
	"strings"
	"time"

	"github.com/nsfs/nsfs/names"
	"github.com/pkg/errors"
	bolt "go.etcd.io/bbolt"
)

// Namespace is a tenant: a set of images, held blobs and labels.
type Namespace struct {
	Name      string
	ID        uint64 // never reused; fs/ uses it as the inode number
	Labels    map[string]string
	CreatedAt time.Time
	UpdatedAt time.Time
	Owner     Owner   // LegacyOwner for a namespace recorded without one
	Quota     int64   // bytes it may hold, or NoQuota
	Sharing   Sharing // its own policy; "" follows the mount's
	Usage     Usage
}

// shorten keeps error messages readable when a name is absurdly long.
func shorten(s string) string { return names.Shorten(s) }

// NamespaceStore keeps the namespaces of the store: ns/ of the mount.
// `mkdir ns/dev` reaches Create, a lookup or stat of ns/dev Stat, `ls ns`
// List and `rmdir ns/dev` Delete. A namespace's labels (its xattrs) are the
// LabelStore's.
type NamespaceStore interface {
	// Create creates a namespace (ErrExists, ErrInvalidArgument) that
	// belongs to root, mode 0755 (LegacyOwner).
	Create(name string, labels map[string]string) (Namespace, error)
	// CreateOwned creates a namespace that belongs to owner.
	CreateOwned(name string, owner Owner, labels map[string]string) (Namespace, error)
	// SetOwner is chmod, chown and chgrp (tenants.go).
	SetOwner(name string, by Caller, change OwnerChange) (Namespace, error)
	// Setting and SetSetting read and change root's settings of a
	// namespace, SettingQuota and SettingSharing (tenants.go).
	Setting(name, key string) (string, error)
	SetSetting(name string, by Caller, key, value string) error
	// Stat returns one namespace without its labels (Labels is nil: a
	// lookup or a stat needs no map built on every one), or ErrNotFound.
	Stat(name string) (Namespace, error)
	// List returns all namespaces sorted by name. Their Labels are nil: a
	// listing does not read them (LabelStore.All does).
	List() ([]Namespace, error)
	// Delete deletes an empty namespace and returns it as it was (its ID
	// tells fs/ which namespace went, in the same transaction). While it
	// has images or blobs it fails with ErrNotEmpty: `namespace "default"
	// must be empty, but it still has images, blobs`. Empty ref-prefix
	// directories go with it.
	Delete(name string) (Namespace, error)
}

// Namespaces is the store's NamespaceStore.
func (db *DB) Namespaces() NamespaceStore { return namespaceStore{db} }

// namespaceStore is the DB seen as its NamespaceStore.
type namespaceStore struct{ *DB }

func (db namespaceStore) Create(name string, labels map[string]string) (Namespace, error) {
	return db.create(name, nil, labels)
}

func (db namespaceStore) create(name string, owner *Owner, labels map[string]string) (Namespace, error) {
	if err := names.ValidateNamespace(name); err != nil {
		return Namespace{}, err
	}
	if err := names.ValidateLabels(Object{Namespace: name}, labels); err != nil {
		return Namespace{}, err
	}
	var ns Namespace
	err := db.batch(func(tx *bolt.Tx) error {
		var err error
		ns, err = createNamespace(tx, name, labels)
		if err == nil && owner != nil {
			err = writeOwner(namespacesBucket(tx).Bucket([]byte(name)), *owner)
			ns.Owner = Owner{owner.UID, owner.GID, owner.Mode & permBits}
		}
		return err
	})
	if err != nil {
		return Namespace{}, err
	}
	return ns, nil
}

// createNamespace writes a new namespace: its record; its data bucket
// comes with the first write that needs it (nsData).
func createNamespace(tx *bolt.Tx, name string, labels map[string]string) (Namespace, error) {
	nsb, err := namespacesBucket(tx).CreateBucket([]byte(name))
	if err != nil {
		if errors.Is(err, bolt.ErrBucketExists) {
			return Namespace{}, errors.WithMessagef(ErrExists, "namespace %q already exists", name)
		}
		return Namespace{}, err
	}
	id, err := nextID(tx)
	if err != nil {
		return Namespace{}, err
	}
	t := now()
	if err := putUint64(nsb, keyID, id); err != nil {
		return Namespace{}, err
	}
	if err := putTime(nsb, keyCreatedAt, t); err != nil {
		return Namespace{}, err
	}
	if err := putTime(nsb, keyUpdatedAt, t); err != nil {
		return Namespace{}, err
	}
	if err := startUsage(nsb); err != nil {
		return Namespace{}, err
	}
	if legacyLayout(tx) { // fsck --repair of a store it has not migrated
		for _, sub := range [][]byte{bucketImages, bucketImageData, bucketDirs, bucketBlobs} {
			if _, err := nsb.CreateBucket(sub); err != nil {
				return Namespace{}, err
			}
		}
	}
	if err := namespacesChanged(tx, t); err != nil {
		return Namespace{}, err
	}
	kept := nonEmptyLabels(labels)
	if err := checkLabelsFit(Object{Namespace: name}, names.LabelsSize(kept)); err != nil {
		return Namespace{}, err
	}
	if err := writeLabels(nsb, kept); err != nil {
		return Namespace{}, err
	}
	return Namespace{Name: name, ID: id, Labels: kept, CreatedAt: t, UpdatedAt: t, Owner: LegacyOwner, Quota: NoQuota}, nil
}

func (db namespaceStore) Stat(name string) (Namespace, error) {
	return db.getNamespace(name, false)
}

func (db *DB) getNamespace(name string, withLabels bool) (Namespace, error) {
	var ns Namespace
	err := db.bolt.View(func(tx *bolt.Tx) error {
		nsb, err := namespaceBucket(tx, name)
		if err != nil {
			return err
		}
		ns = readNamespace(name, nsb, withLabels)
		return nil
	})
	return ns, err
}

func readNamespace(name string, nsb *bolt.Bucket, withLabels bool) Namespace {
	ns := Namespace{
		Name:      name,
		ID:        getUint64(nsb, keyID),
		CreatedAt: getTime(nsb, keyCreatedAt),
		UpdatedAt: getTime(nsb, keyUpdatedAt),
		Owner:     readOwner(nsb),
		Quota:     readQuota(nsb),
		Sharing:   readSharing(nsb),
		Usage:     readUsage(nsb),
	}
	if withLabels {
		ns.Labels = readLabels(labelsOf(nsb))
	}
	return ns
}

func (db namespaceStore) List() ([]Namespace, error) {
	var list []Namespace
	err := db.bolt.View(func(tx *bolt.Tx) error {
		all := namespacesBucket(tx)
		return all.ForEachBucket(func(k []byte) error {
			list = append(list, readNamespace(string(k), all.Bucket(k), false))
			return nil
		})
	})
	return list, err
}

func (db namespaceStore) Delete(name string) (Namespace, error) {
	var ns Namespace
	err := db.updateFreeing(func(tx *bolt.Tx) error {
		nsb, err := namespaceBucket(tx, name)
		if err != nil {
			return err
		}
		var still []string
		if !isEmptyBucket(nsSub(nsb, bucketImages)) {
			still = append(still, "images")
		}
		if !isEmptyBucket(nsSub(nsb, bucketBlobs)) {
			still = append(still, "blobs")
		}
		if len(still) > 0 {
			return errors.WithMessagef(ErrNotEmpty, "namespace %q must be empty, but it still has %s", name, strings.Join(still, ", "))
		}
		ns = readNamespace(name, nsb, true)
		if isShareable(nsb) { // it holds nothing now, but the index must never outlive a hold
			if err := countHolds(tx, nsb, -1); err != nil {
				return err
			}
		}
		if err := namespacesChanged(tx, now()); err != nil {
			return err
		}
		return namespacesBucket(tx).DeleteBucket([]byte(name))
	})
	if err != nil {
		return Namespace{}, err
	}
	return ns, nil
}

func isEmptyBucket(b *bolt.Bucket) bool {
	if b == nil {
		return true
	}
	k, _ := b.Cursor().First()
	return k == nil
}
