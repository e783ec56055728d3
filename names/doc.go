// Package names holds every rule nsfs applies to a name, written once:
// namespace names, image refs, labels, digests and the length of one
// directory entry. The store (metadata), the filesystem (fs), the CLI's
// client and the CLI call it, so that a name one of them accepts no other
// refuses, and a refusal reads the same wherever it is made.
//
// Each Validate function returns nil or an error of one errdefs kind
// (ErrInvalidArgument, ErrNameTooLong, ErrLabelTooLarge, ErrLabelsFull)
// whose message names what was refused and why. Callers that name the
// object in their own words use the …Problem functions, which say only
// what is wrong. The package knows nothing of bbolt or of the mount.
package names

// MaxNameLen is NAME_MAX: a longer name cannot be a directory entry (nor
// the name of an extended attribute).
const MaxNameLen = 255

// Shorten keeps messages readable when a name is absurdly long: at most
// 64 bytes of s, then "...".
func Shorten(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	return s[:max] + "..."
}
