package client

import (
	"errors"
	"testing"
)

func TestRefPathStaysInImages(t *testing.T) {
	n := Mount{Dir: "/mnt"}.Namespace("default")
	for ref, want := range map[string]string{
		"app:v1":                   "/mnt/ns/default/images/app:v1",
		"docker.io/library/app:v1": "/mnt/ns/default/images/docker.io/library/app:v1",
		".hidden":                  "/mnt/ns/default/images/.hidden",
	} {
		if got, err := n.RefPath(ref); err != nil || got != want {
			t.Errorf("RefPath(%q) = %q, %v; want %q", ref, got, err, want)
		}
	}
	for _, bad := range []string{"", ".", "..", "../x", "a/../../x", "/abs", "a//b", "a/", "a/./b", "a\x00b"} {
		if got, err := n.RefPath(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("RefPath(%q) = %q, %v; want ErrInvalid", bad, got, err)
		}
	}
}
