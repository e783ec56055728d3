package blobs

import (
	"testing"

	"github.com/opencontainers/go-digest"
)

// BenchmarkValidateDigest is the check every blob lookup makes.
func BenchmarkValidateDigest(b *testing.B) {
	d := digest.FromString("a layer")
	for b.Loop() {
		if err := ValidateDigest(d); err != nil {
			b.Fatal(err)
		}
	}
}
