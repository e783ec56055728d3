package names

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/nsfs/nsfs/errdefs"
	"github.com/pkg/errors"
)

// Limits of a ref: it is a path below images/.
const (
	MaxRefLen          = 4096 // PATH_MAX
	MaxRefComponentLen = 255  // NAME_MAX
)

// ValidateRef checks that a ref is a clean relative path: components
// separated by single '/', none empty, "." or "..", none over 255 bytes
// (ErrNameTooLong), no control character (indexControl: a newline or an
// escape sequence in a name breaks every listing and can drive the
// terminal that prints it), whole ref at most 4096 bytes
// (ErrNameTooLong). Anything else is ErrInvalidArgument. Other printable
// characters (spaces, quotes, backslashes) are valid; listings quote them.
func ValidateRef(ref string) error {
	kind, problem := refProblem(ref)
	switch {
	case kind == nil:
		return nil
	case ref == "":
		return errors.WithMessage(kind, "image ref is empty")
	}
	return errors.WithMessagef(kind, "image ref %q: %s", Shorten(ref), problem)
}

// RefProblem is what ValidateRef finds wrong with ref, without the ref
// and the kind ("empty path component (a leading, trailing or doubled
// '/')"), for a caller that names the ref in its own words; "" for a
// valid ref.
func RefProblem(ref string) string {
	_, problem := refProblem(ref)
	return problem
}

// refProblem is ValidateRef's verdict: nil, or the kind and the problem.
func refProblem(ref string) (kind error, problem string) {
	if ref == "" {
		return errdefs.ErrInvalidArgument, "empty ref"
	}
	if i, r := indexControl(ref); i >= 0 {
		what := fmt.Sprintf("control character %U", r)
		switch {
		case r == 0:
			what = "a NUL byte"
		case r < 0x80 || r == utf8.RuneError:
			what = fmt.Sprintf("control character 0x%02x", ref[i])
		}
		return errdefs.ErrInvalidArgument, fmt.Sprintf("contains %s at byte %d", what, i)
	}
	if len(ref) > MaxRefLen {
		return errdefs.ErrNameTooLong, fmt.Sprintf("%d bytes, over the %d-byte limit", len(ref), MaxRefLen)
	}
	for rest := ref; ; {
		comp, tail, more := strings.Cut(rest, "/")
		switch {
		case comp == "":
			return errdefs.ErrInvalidArgument, "empty path component (a leading, trailing or doubled '/')"
		case comp == "." || comp == "..":
			return errdefs.ErrInvalidArgument, fmt.Sprintf("path component %q is not allowed", comp)
		case len(comp) > MaxRefComponentLen:
			return errdefs.ErrNameTooLong, fmt.Sprintf("path component of %d bytes, over the %d-byte limit", len(comp), MaxRefComponentLen)
		}
		if !more {
			return nil, ""
		}
		rest = tail
	}
}

// indexControl is the index of the first control character of s and the
// character, or -1: bytes below 0x20 and DEL, the C1 controls U+0080 to
// U+009F (U+009B is a terminal's CSI), and a byte 0x80-0x9f that is not
// part of a UTF-8 character (the same controls, to a terminal reading
// bytes). Other bytes that are not UTF-8 are valid; listings quote them.
func indexControl(s string) (int, rune) {
	for i := 0; i < len(s); {
		c := s[i]
		if c < 0x80 {
			if c < 0x20 || c == 0x7f {
				return i, rune(c)
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if (r >= 0x80 && r <= 0x9f) || (r == utf8.RuneError && n == 1 && c <= 0x9f) {
			if r == utf8.RuneError {
				return i, utf8.RuneError
			}
			return i, r
		}
		i += n
	}
	return -1, 0
}
