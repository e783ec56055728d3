package metadata

import (
	"maps"

	"github.com/nsfs/nsfs/names"
	"github.com/pkg/errors"
	bolt "go.etcd.io/bbolt"
)

// An image being written is one a writer created with an ID from
// ImageStore.ReserveID and has not committed yet: the store does not have
// it until its first ImageStore.Put (with Create), which also stores its
// labels. Until then its labels are kept by the writer in PendingLabels,
// and a rename of it only frees its new name (ImageStore.RenamePending);
// the rules are the store's.

// PendingLabels are the labels of an image being written, set and removed
// by the rules and with the messages of LabelStore.Set and Remove, so that
// its first commit (ImageWrite.Labels) can store them. The zero value has
// no labels. It is not safe for concurrent use.
type PendingLabels struct {
	labels map[string]string
}

// Set sets key=value on o's pending labels as LabelStore.Set does on a stored
// object: an empty value removes the label, check (if not nil) is called
// with whether the label exists, and the labels must stay within
// names.MaxLabelsSize (ErrLabelsFull). Nothing changes on error.
func (p *PendingLabels) Set(o Object, key, value string, check func(exists bool) error) error {
	if err := names.ValidateLabel(key, value); err != nil {
		return errors.WithMessage(err, o.String())
	}
	old, exists := p.labels[key]
	if err := checkLabelChange(o, key, value, old, exists, func() int { return names.LabelsSize(p.labels) }, check); err != nil {
		return err
	}
	if value == "" {
		delete(p.labels, key)
		return nil
	}
	if p.labels == nil {
		p.labels = map[string]string{}
	}
	p.labels[key] = value
	return nil
}

// Remove removes key from o's pending labels (ErrNoLabel when absent).
func (p *PendingLabels) Remove(o Object, key string) error {
	if _, ok := p.labels[key]; !ok {
		return noLabel(o, key)
	}
	delete(p.labels, key)
	return nil
}

// Label is the value of key among o's pending labels (ErrNoLabel).
func (p *PendingLabels) Label(o Object, key string) (string, error) {
	value, ok := p.labels[key]
	if !ok {
		return "", noLabel(o, key)
	}
	return value, nil
}

// Labels returns a copy of the labels (nil when there are none).
func (p *PendingLabels) Labels() map[string]string {
	return maps.Clone(p.labels)
}

func (db imageStore) RenamePending(fromNS, from, toNS, to string, noReplace bool) (pending bool, err error) {
	return db.renameImage(fromNS, from, toNS, to, noReplace, func(tx *bolt.Tx, nsb *bolt.Bucket, rel *releases) error {
		return freeForPending(tx, nsb, toNS, to, noReplace, rel)
	})
}

// freeForPending frees ref of namespace ns for an image being written that
// is renamed to it (ImageStore.RenamePending).
func freeForPending(tx *bolt.Tx, nsb *bolt.Bucket, ns, ref string, noReplace bool, rel *releases) error {
	if noReplace {
		if isImage(nsb, ref) || isDir(nsb, ref) {
			return errors.WithMessagef(ErrExists, "rename to image %q in namespace %q: %q already exists", shorten(ref), ns, shorten(ref))
		}
		if err := pathError(nsb, ns, ref); !IsNotFound(err) {
			return err
		}
		return nil
	}
	if err := deleteImage(tx, nsb, ns, ref, rel); err != nil && !IsNotFound(err) {
		return err
	}
	return nil
}
