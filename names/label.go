package names

import (
	"fmt"

	"github.com/nsfs/nsfs/errdefs"
	"github.com/pkg/errors"
)

// MaxLabelSize bounds len(key)+len(value) of one label (containerd's rule).
const MaxLabelSize = 4096

// MaxLabelsSize bounds all the labels of one object (a namespace, an
// image, a namespace's hold of a blob): the sum of LabelSize over them.
// listxattr's answer, "user.<key>\0" per label, then always fits in the
// 64 KiB Linux allows (XATTR_LIST_MAX); an object with more would make
// listxattr fail with E2BIG, and every tool that lists labels with it.
const MaxLabelsSize = 65536

// LabelSize is what one label counts against MaxLabelsSize:
// len("user.")+len(key)+1 in listxattr's answer, plus its value.
func LabelSize(key, value string) int { return len(key) + len(value) + len("user.") + 1 }

// LabelsSize is the sum of LabelSize over labels (empty values, which
// are no label, count nothing).
func LabelsSize(labels map[string]string) int {
	n := 0
	for k, v := range labels {
		if v != "" {
			n += LabelSize(k, v)
		}
	}
	return n
}

// ValidateLabel checks one label: key non-empty (ErrInvalidArgument),
// len(key)+len(value) <= MaxLabelSize (ErrLabelTooLarge).
func ValidateLabel(key, value string) error {
	if kind, problem := labelProblem(key, value); kind != nil {
		return errors.WithMessage(kind, "label "+problem)
	}
	return nil
}

// LabelProblem is what ValidateLabel finds wrong with key=value, for a
// caller that names the label in its own words: "key is empty", "key
// and value length (4097 bytes) greater than maximum size (4096 bytes)";
// "" for a valid label.
func LabelProblem(key, value string) string {
	_, problem := labelProblem(key, value)
	return problem
}

func labelProblem(key, value string) (kind error, problem string) {
	if key == "" {
		return errdefs.ErrInvalidArgument, "key is empty"
	}
	if n := len(key) + len(value); n > MaxLabelSize {
		return errdefs.ErrLabelTooLarge, fmt.Sprintf("key and value length (%d bytes) greater than maximum size (%d bytes)", n, MaxLabelSize)
	}
	return nil, ""
}

// ValidateLabels checks each label (ValidateLabel) and that together they
// fit in MaxLabelsSize (ErrLabelsFull): the labels an object is created
// with, or would have after a change. owner names the object in messages.
func ValidateLabels(owner fmt.Stringer, labels map[string]string) error {
	for k, v := range labels {
		if err := ValidateLabel(k, v); err != nil {
			return errors.WithMessage(err, owner.String())
		}
	}
	return CheckLabelsSize(owner, LabelsSize(labels))
}

// CheckLabelsSize refuses labels of owner that take total bytes
// (LabelsSize) over MaxLabelsSize (ErrLabelsFull).
func CheckLabelsSize(owner fmt.Stringer, total int) error {
	if problem := LabelsSizeProblem(total); problem != "" {
		return errors.WithMessagef(errdefs.ErrLabelsFull, "%s: %s; remove some first", owner, problem)
	}
	return nil
}

// LabelsSizeProblem says why labels of total bytes (LabelsSize) are too
// many, for a caller that names their owner in its own words; "" when
// they fit.
func LabelsSizeProblem(total int) string {
	if total <= MaxLabelsSize {
		return ""
	}
	return fmt.Sprintf("its labels would take %d bytes, over the limit of %d (%s, so that listxattr fits in 64 KiB)", total, MaxLabelsSize, labelCost)
}

// labelCost says how LabelSize counts a label, for messages.
const labelCost = "each label counts len(key)+len(value)+6"

// LabelsFull says what the limit on an object's labels is, for a caller
// that learnt only that they are full (ENOSPC from setxattr).
func LabelsFull() string {
	return fmt.Sprintf("at most %d bytes; %s", MaxLabelsSize, labelCost)
}
