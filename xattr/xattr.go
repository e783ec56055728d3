// Package xattr is the codec between the Linux extended-attribute interface
// and nsfs labels: only the "user." namespace carries labels, "user.<key>"
// is label <key>. It knows nothing of FUSE or bbolt; the errors it returns
// are mapped to errno by fs/ (ErrNotSupported → ENODATA on get, ENOTSUP on
// set; ErrInvalidName and ErrInvalidFlags → EINVAL; ErrRange → ERANGE;
// ErrExists → EEXIST; ErrNoData → ENODATA; ErrNameTooLong → ERANGE as
// Linux does).
package xattr

import (
	stderrors "errors"
	"sort"
	"strconv"
	"strings"

	"github.com/pkg/errors"
)

// UserPrefix is the only xattr namespace that maps to labels.
const UserPrefix = "user."

// Flags of setxattr(2).
const (
	FlagCreate  = 0x1 // XATTR_CREATE: fail with EEXIST if it exists
	FlagReplace = 0x2 // XATTR_REPLACE: fail with ENODATA if it does not
)

// MaxNameLen is XATTR_NAME_MAX.
const MaxNameLen = 255

// Plain values, without the stack trace github.com/pkg/errors.New
// records, made before main by every nsfs process.
var (
	ErrNotSupported = stderrors.New("only user.* extended attributes are supported")
	ErrInvalidName  = stderrors.New("invalid extended attribute name")
	ErrNameTooLong  = stderrors.New("extended attribute name too long")
	ErrRange        = stderrors.New("buffer too small")
	ErrExists       = stderrors.New("extended attribute exists")
	ErrNoData       = stderrors.New("no such extended attribute")
	ErrInvalidFlags = stderrors.New("invalid setxattr flags")
)

// Key returns the label key for an xattr name ("user.team" → "team").
// The length is checked first, for any namespace, as Linux does; a name
// outside "user." is ErrNotSupported, and "user." alone (or a name with a
// NUL, which no C caller can send and List could not encode) is
// ErrInvalidName.
func Key(name string) (string, error) {
	switch {
	case name == "":
		return "", errors.WithMessage(ErrInvalidName, "empty name")
	case len(name) > MaxNameLen:
		return "", errors.WithMessagef(ErrNameTooLong, "%.32q... is %d bytes, the limit is %d", name, len(name), MaxNameLen)
	case !strings.HasPrefix(name, UserPrefix):
		return "", errors.WithMessagef(ErrNotSupported, "%q", name)
	case name == UserPrefix:
		return "", errors.WithMessagef(ErrInvalidName, "%q has no key after the prefix", name)
	case strings.IndexByte(name, 0) >= 0:
		return "", errors.WithMessagef(ErrInvalidName, "%q contains a NUL byte", name)
	}
	return name[len(UserPrefix):], nil
}

// Name returns the xattr name for a label key.
func Name(key string) string { return UserPrefix + key }

// Condition is what setxattr's flags demand of the current value.
type Condition int

const (
	Always    Condition = iota // no flag
	IfAbsent                   // XATTR_CREATE
	IfPresent                  // XATTR_REPLACE
)

// String names the setxattr flag the condition comes from.
func (c Condition) String() string {
	switch c {
	case Always:
		return "no flag"
	case IfAbsent:
		return "XATTR_CREATE"
	case IfPresent:
		return "XATTR_REPLACE"
	}
	return "Condition(" + strconv.Itoa(int(c)) + ")"
}

// ParseFlags turns setxattr flags into a Condition (ErrInvalidFlags for
// both or unknown bits).
func ParseFlags(flags uint32) (Condition, error) {
	switch flags {
	case 0:
		return Always, nil
	case FlagCreate:
		return IfAbsent, nil
	case FlagReplace:
		return IfPresent, nil
	}
	return Always, errors.WithMessagef(ErrInvalidFlags, "flags %#x (only XATTR_CREATE=%#x or XATTR_REPLACE=%#x, not both)",
		flags, FlagCreate, FlagReplace)
}

// CheckValue refuses a value the condition cannot take: an empty value
// removes a label (containerd has no empty labels), so XATTR_CREATE with
// one would create nothing, and succeeding would say it did
// (ErrInvalidFlags, EINVAL). XATTR_REPLACE with an empty value removes
// the label, or is ErrNoData when it is absent (Check), as setfattr -x.
func (c Condition) CheckValue(value []byte) error {
	if c == IfAbsent && len(value) == 0 {
		return errors.WithMessage(ErrInvalidFlags, "an empty value removes a label; XATTR_CREATE with an empty value would create nothing")
	}
	return nil
}

// Check applies a Condition to whether the label exists now. Its signature
// fits metadata.LabelStore.Set's check, which calls it inside the transaction.
func (c Condition) Check(exists bool) error {
	switch {
	case c == IfAbsent && exists:
		return errors.WithMessage(ErrExists, "XATTR_CREATE")
	case c == IfPresent && !exists:
		return errors.WithMessage(ErrNoData, "XATTR_REPLACE")
	}
	return nil
}

// Get copies value into dest. With a dest shorter than the value it returns
// (len(value), ErrRange) — go-fuse turns that into the size-probe answer.
func Get(dest []byte, value string) (uint32, error) {
	if len(dest) < len(value) {
		return uint32(len(value)), errors.WithMessagef(ErrRange, "value of %d bytes, buffer of %d", len(value), len(dest))
	}
	return uint32(copy(dest, value)), nil
}

// List encodes keys as "user.<key>\x00..." into dest, sorted, with the same
// size-probe rule as Get. keys may come in any order and are not modified.
func List(dest []byte, keys []string) (uint32, error) {
	size := 0
	for _, key := range keys {
		size += len(UserPrefix) + len(key) + 1
	}
	if len(dest) < size {
		return uint32(size), errors.WithMessagef(ErrRange, "list of %d bytes, buffer of %d", size, len(dest))
	}
	// Sorted so that listings are stable; copy so the caller's slice
	// (perhaps shared) stays as it was.
	sorted := append([]string(nil), keys...)
	sort.Strings(sorted)
	n := 0
	for _, key := range sorted {
		n += copy(dest[n:], UserPrefix)
		n += copy(dest[n:], key)
		dest[n] = 0
		n++
	}
	return uint32(n), nil
}
