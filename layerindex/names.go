package layerindex

import (
	"errors"
	"fmt"
	"strings"

	"github.com/opencontainers/go-digest"
)

// cleanName makes a tar name a path below the root ("" for the root
// itself), as unpackers take it, or says why it is refused. Leading "/"s
// are stripped and the name taken from the image's root (GNU tar,
// containerd and umoci all do; umoci writes the root as "/"); empty and
// "." components go, and ".." takes away the component before it. A name
// whose ".." would go above the root is refused: it is never followed.
func cleanName(name string) (string, string) {
	if trimmed := strings.TrimSuffix(name, "/"); isCleanPath(trimmed) {
		return trimmed, "" // nearly every name: nothing to make
	}
	parts := make([]string, 0, strings.Count(name, "/")+1)
	for _, p := range strings.Split(name, "/") {
		switch p {
		case "", ".":
		case "..":
			if len(parts) == 0 {
				return "", `climbs out of the root (a ".." above it)`
			}
			parts = parts[:len(parts)-1]
		default:
			parts = append(parts, p)
		}
	}
	return strings.Join(parts, "/"), ""
}

// isCleanPath says whether p is already what cleanName makes of it: no
// leading or trailing "/", and no empty, "." or ".." component.
func isCleanPath(p string) bool {
	start := 0
	for i := 0; i <= len(p); i++ {
		if i < len(p) && p[i] != '/' {
			continue
		}
		if c := p[start:i]; c == "" || c == "." || c == ".." {
			return false
		}
		start = i + 1
	}
	return true
}

// NotShownError says why the files of a layer cannot be shown: an entry
// was refused when the layer was indexed (a name that climbs out of the
// root), an entry cannot be applied (a hard link to nothing), or the
// blob is not the tar stream its digest names (damaged, cut short).
// It is the answer for as long as the layer is what it is.
type NotShownError struct {
	Layer  int // its place in the image, from 1; 0 when not known
	Digest digest.Digest
	Err    error
}

func (e *NotShownError) Error() string {
	if e.Layer > 0 {
		return fmt.Sprintf("layer %d (%s) is not shown: %v", e.Layer, e.Digest, e.Err)
	}
	return fmt.Sprintf("layer %s is not shown: %v", e.Digest, e.Err)
}

func (e *NotShownError) Unwrap() error { return e.Err }

// AtLayer gives a NotShownError err is the layer's place in its image,
// from 1; any other err is returned as it is.
func AtLayer(err error, layer int) error {
	var n *NotShownError
	if errors.As(err, &n) && n.Layer == 0 {
		at := *n
		at.Layer = layer
		return &at
	}
	return err
}

// IsNotShown says whether err is, or wraps, a NotShownError.
func IsNotShown(err error) bool {
	var n *NotShownError
	return errors.As(err, &n)
}
