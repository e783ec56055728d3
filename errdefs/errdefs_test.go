package errdefs

import (
	"errors"
	"fmt"
	"testing"
)

// TestErrorf: the kind is seen through wrapping, the message is exactly
// the format's, and no other kind matches.
func TestErrorf(t *testing.T) {
	err := fmt.Errorf("ctx: %w", Errorf(ErrInvalidArgument, "label %q: the key is empty", "=v"))
	if !errors.Is(err, ErrInvalidArgument) || errors.Is(err, ErrNotFound) || err.Error() != `ctx: label "=v": the key is empty` {
		t.Errorf("Errorf = %v", err)
	}
}
