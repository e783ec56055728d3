// Package xattr is the codec between the Linux extended-attribute interface
// and nsfs labels: only the "user." namespace carries labels, "user.<key>"
// is label <key>. It knows nothing of FUSE or bbolt; the errors it returns
// are mapped to errno by fs/ (ErrNotSupported → ENODATA on get, ENOTSUP on
// set; ErrInvalidName → EINVAL; ErrRange → ERANGE; ErrExists → EEXIST;
// ErrNoData → ENODATA; ErrNameTooLong → ERANGE as Linux does).
package xattr

import "github.com/pkg/errors"

// UserPrefix is the only xattr namespace that maps to labels.
const UserPrefix = "user."

// Flags of setxattr(2).
const (
	FlagCreate  = 0x1 // XATTR_CREATE: fail with EEXIST if it exists
	FlagReplace = 0x2 // XATTR_REPLACE: fail with ENODATA if it does not
)

// MaxNameLen is XATTR_NAME_MAX.
const MaxNameLen = 255

var (
	ErrNotSupported = errors.New("only user.* extended attributes are supported")
	ErrInvalidName  = errors.New("invalid extended attribute name")
	ErrNameTooLong  = errors.New("extended attribute name too long")
	ErrRange        = errors.New("buffer too small")
	ErrExists       = errors.New("extended attribute exists")
	ErrNoData       = errors.New("no such extended attribute")
	ErrInvalidFlags = errors.New("invalid setxattr flags")
)

// Key returns the label key for an xattr name ("user.team" → "team").
func Key(name string) (string, error) { panic("not implemented") }

// Name returns the xattr name for a label key.
func Name(key string) string { panic("not implemented") }

// Condition is what setxattr's flags demand of the current value.
type Condition int

const (
	Always    Condition = iota // no flag
	IfAbsent                   // XATTR_CREATE
	IfPresent                  // XATTR_REPLACE
)

// ParseFlags turns setxattr flags into a Condition (ErrInvalidFlags for
// both or unknown bits).
func ParseFlags(flags uint32) (Condition, error) { panic("not implemented") }

// Check applies a Condition to whether the label exists now.
func (c Condition) Check(exists bool) error { panic("not implemented") }

// Get copies value into dest. With a dest shorter than the value it returns
// (len(value), ErrRange) — go-fuse turns that into the size-probe answer.
func Get(dest []byte, value string) (uint32, error) { panic("not implemented") }

// List encodes keys as "user.<key>\x00..." into dest, sorted, with the same
// size-probe rule as Get.
func List(dest []byte, keys []string) (uint32, error) { panic("not implemented") }
