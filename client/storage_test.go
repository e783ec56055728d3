package client

import (
	"errors"
	"strings"
	"testing"

	"oras.land/oras-go/v2/errdef"
)

// TestImagePathFollowsTheStoresRule: ImagePath refuses exactly the refs
// the store refuses (names.ValidateRef), before they become paths.
func TestImagePathFollowsTheStoresRule(t *testing.T) {
	target := Mount{Dir: "/mnt"}.Namespace("default").Target()
	for ref, want := range map[string]string{
		"redis:latest":              "/mnt/ns/default/images/redis:latest",
		"docker.io/library/redis:7": "/mnt/ns/default/images/docker.io/library/redis:7",
		"my app/v1":                 "/mnt/ns/default/images/my app/v1",
		strings.Repeat("c", 255):    "/mnt/ns/default/images/" + strings.Repeat("c", 255),
	} {
		if got, err := target.ImagePath(ref); err != nil || got != want {
			t.Errorf("ImagePath(%q) = %q, %v; want %q", ref, got, err, want)
		}
	}
	for ref, want := range map[string]string{
		"":                       `image "": empty ref: invalid reference`,
		"../x":                   `image "../x": path component ".." is not allowed: invalid reference`,
		"a//b":                   `image "a//b": empty path component (a leading, trailing or doubled '/'): invalid reference`,
		"/abs":                   `image "/abs": empty path component (a leading, trailing or doubled '/'): invalid reference`,
		"a\tb":                   `image "a\tb": contains control character 0x09 at byte 1: invalid reference`,
		strings.Repeat("c", 256): `image "` + strings.Repeat("c", 256) + `": path component of 256 bytes, over the 255-byte limit: invalid reference`,
	} {
		got, err := target.ImagePath(ref)
		if !errors.Is(err, errdef.ErrInvalidReference) || err.Error() != want {
			t.Errorf("ImagePath(%q) = %q, %v; want %s", ref, got, err, want)
		}
	}
}
