package metadata

import (
	"fmt"

	"github.com/nsfs/nsfs/names"
	"github.com/opencontainers/go-digest"
	"github.com/pkg/errors"
	bolt "go.etcd.io/bbolt"
)

// bucketLabelsSize is names.LabelsSize of an object's labels (labelsOf).
func bucketLabelsSize(lb keyRange) int {
	n := 0
	_ = lb.ForEach(func(k, v []byte) error {
		n += names.LabelSize(string(k), string(v))
		return nil
	})
	return n
}

// checkLabelsFit refuses a total over names.MaxLabelsSize.
func checkLabelsFit(o Object, total int) error { return names.CheckLabelsSize(o, total) }

// Object names what a label belongs to: a namespace (Image and Blob empty),
// an image of it (Image set), or a blob it can see (Blob set). Content
// labels are per namespace, as in containerd.
//
// A blob's labels live on the namespace's hold of it: Labels of a blob the
// namespace can see but does not hold is empty, removing one is ErrNoLabel,
// and setting one is ErrNotFound (as in containerd, where content labels
// are updated only in a namespace that has the blob) — write the blob or
// reference it from an image first.
type Object struct {
	Namespace string
	Image     string
	Blob      digest.Digest
}

// isNamespace: o is a namespace, not an image or a blob of it.
func (o Object) isNamespace() bool { return o.Image == "" && o.Blob == "" }

func (o Object) String() string {
	switch {
	case o.Image != "":
		return fmt.Sprintf("image %q in namespace %q", shorten(o.Image), o.Namespace)
	case o.Blob != "":
		return fmt.Sprintf("blob %s in namespace %q", o.Blob, o.Namespace)
	default:
		return fmt.Sprintf("namespace %q", o.Namespace)
	}
}

// LabelStore keeps the labels of namespaces, images and blobs, each named
// by an Object; they are the user.* xattrs of ns/<name>, of an image file
// and of a blob file. `getfattr -d` reaches All, `getfattr -n user.team`
// Get, `setfattr -n user.team -v infra` Set and `setfattr -x user.team`
// Remove. An image still being written keeps its labels in PendingLabels,
// by the same rules.
type LabelStore interface {
	// All returns the object's labels (ErrNotFound when the object is
	// gone).
	All(o Object) (map[string]string, error)
	// Get returns the value of one label of o: ErrNoLabel when o has no
	// such label, ErrNotFound when o is gone. It reads the one key, not
	// the whole set (getxattr asks for one).
	Get(o Object, key string) (string, error)
	// Set sets key=value on o. An empty value removes the label
	// (containerd has no empty labels). check, if not nil, is called
	// inside the transaction with whether the label exists now, and its
	// error aborts the update (setxattr's XATTR_CREATE / XATTR_REPLACE).
	// A label that would take o's labels over names.MaxLabelsSize is
	// ErrLabelsFull, decided in the transaction; a change that shrinks
	// them is taken even over the limit (a store written before the
	// limit), so that they can be brought under.
	Set(o Object, key, value string, check func(exists bool) error) error
	// Remove removes key from o (ErrNoLabel when absent).
	Remove(o Object, key string) error
}

// Labels is the store's LabelStore.
func (db *DB) Labels() LabelStore { return labelStore{db} }

// labelStore is the DB seen as its LabelStore.
type labelStore struct{ *DB }

func (db labelStore) All(o Object) (map[string]string, error) {
	var labels map[string]string
	err := db.bolt.View(func(tx *bolt.Tx) error {
		owner, _, err := db.labelOwner(tx, o, false)
		if err != nil {
			return err
		}
		if owner == nil { // a visible blob the namespace does not hold
			labels = map[string]string{}
			return nil
		}
		labels = readLabels(labelsOf(owner))
		return nil
	})
	return labels, err
}

func (db labelStore) Get(o Object, key string) (string, error) {
	var value string
	err := db.bolt.View(func(tx *bolt.Tx) error {
		owner, _, err := db.labelOwner(tx, o, false)
		if err != nil {
			return err
		}
		v := labelsOf(owner).Get([]byte(key)) // owner nil: a visible blob the namespace does not hold
		if v == nil {
			return noLabel(o, key)
		}
		value = string(v)
		return nil
	})
	return value, err
}

func (db labelStore) Set(o Object, key, value string, check func(exists bool) error) error {
	if err := names.ValidateLabel(key, value); err != nil {
		return errors.WithMessage(err, o.String())
	}
	return db.batch(func(tx *bolt.Tx) error {
		owner, touch, err := db.labelOwner(tx, o, true)
		if err != nil {
			return err
		}
		lb := labelsOf(owner)
		wasShareable := o.isNamespace() && isShareable(owner)
		old := lb.Get([]byte(key))
		exists := old != nil
		if err := checkLabelChange(o, key, value, string(old), exists, func() int { return bucketLabelsSize(lb) }, check); err != nil {
			return err
		}
		if value == "" {
			if !exists {
				return nil
			}
			err = lb.Delete([]byte(key))
		} else {
			err = lb.Put([]byte(key), []byte(value))
		}
		if err != nil {
			return err
		}
		if o.isNamespace() {
			if err := shareableChanged(tx, owner, wasShareable); err != nil {
				return err
			}
			if !wasShareable && isShareable(owner) {
				if err := db.claimHeldBy(tx, owner); err != nil {
					return err
				}
			}
		}
		return touch()
	})
}

// checkLabelChange applies LabelStore.Set's rules, once names.ValidateLabel passed,
// to setting key=value on o, whose label key has the value old now when
// exists: check (if not nil) with whether it exists, then the limit on all
// of o's labels (size: what they take now), taken only when the change
// grows them.
func checkLabelChange(o Object, key, value, old string, exists bool, size func() int, check func(exists bool) error) error {
	if check != nil {
		if err := check(exists); err != nil {
			return err
		}
	}
	if value == "" {
		return nil
	}
	before := size()
	after := before + names.LabelSize(key, value)
	if exists {
		after -= names.LabelSize(key, old)
	}
	if after > before {
		return checkLabelsFit(o, after)
	}
	return nil
}

// noLabel is the error of a label o does not have.
func noLabel(o Object, key string) error {
	return errors.WithMessagef(ErrNoLabel, "%s has no label %q", o, key)
}

func (db labelStore) Remove(o Object, key string) error {
	return db.batch(func(tx *bolt.Tx) error {
		owner, touch, err := db.labelOwner(tx, o, false)
		if err != nil {
			return err
		}
		lb := labelsOf(owner)
		if lb.Get([]byte(key)) == nil {
			return noLabel(o, key)
		}
		wasShareable := o.isNamespace() && isShareable(owner)
		if err := lb.Delete([]byte(key)); err != nil {
			return err
		}
		if o.isNamespace() {
			if err := shareableChanged(tx, owner, wasShareable); err != nil {
				return err
			}
		}
		return touch()
	})
}

// labelOwner finds the bucket whose labels/ keys are o's, and a function
// that bumps o's updatedat (a blob's hold has none). For a blob the
// namespace can see without holding it, the bucket is nil (mustHold false)
// or the error ErrNotFound (mustHold true).
func (db *DB) labelOwner(tx *bolt.Tx, o Object, mustHold bool) (*bolt.Bucket, func() error, error) {
	noTouch := func() error { return nil }
	if o.Image != "" && o.Blob != "" {
		return nil, nil, errors.WithMessagef(ErrInvalidArgument, "label object names both image %q and blob %s", shorten(o.Image), o.Blob)
	}
	nsb, err := namespaceBucket(tx, o.Namespace)
	if err != nil {
		return nil, nil, err
	}
	switch {
	case o.Image != "":
		rec, err := getImageRecord(nsb, o.Namespace, o.Image)
		if err != nil {
			return nil, nil, err
		}
		data, err := imageData(nsb, rec.id)
		if err != nil {
			return nil, nil, err
		}
		touch := func() error {
			rec.changedAt = now() // ctime only: the image's bytes did not change
			return nsSub(nsb, bucketImages).Put([]byte(o.Image), rec.encode())
		}
		return data, touch, nil
	case o.Blob != "":
		if err := names.ValidateDigest(o.Blob); err != nil {
			return nil, nil, err
		}
		if hold := heldBlob(nsb, o.Blob); hold != nil {
			return hold, func() error { return putTime(hold, keyCtime, now()) }, nil
		}
		if _, visible := db.visible(tx, o.Namespace, o.Blob); !visible {
			return nil, nil, errors.WithMessagef(ErrNotFound, "blob %s not found in namespace %q", o.Blob, o.Namespace)
		}
		if mustHold {
			// Labelling a blob it can see makes the namespace hold it, as
			// writing its bytes again would (rsync -X restores a blob it
			// finds there by its labels alone); it grants nothing an
			// image naming the blob would not.
			return db.holdToLabel(tx, nsb, o)
		}
		return nil, noTouch, nil
	default:
		return nsb, func() error { return putTime(nsb, keyUpdatedAt, now()) }, nil
	}
}
