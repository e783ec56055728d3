package client

import (
	"runtime"
	"strings"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/pkg/errors"
)

// HostPlatform is the platform this binary runs on (linux/amd64, ...),
// what a pull selects from an index unless told otherwise, as ctr does.
func HostPlatform() ocispec.Platform {
	return normalizePlatform(ocispec.Platform{OS: runtime.GOOS, Architecture: runtime.GOARCH})
}

// ParsePlatform reads os/arch[/variant] (linux/amd64, linux/arm64/v8,
// linux/arm/v7) or a bare architecture (arm64: the os is linux), with
// the architecture aliases containerd knows (x86_64, aarch64, armhf, ...).
func ParsePlatform(s string) (ocispec.Platform, error) {
	parts := strings.Split(strings.ToLower(s), "/")
	var p ocispec.Platform
	switch len(parts) {
	case 1:
		p = ocispec.Platform{OS: "linux", Architecture: parts[0]}
	case 2:
		p = ocispec.Platform{OS: parts[0], Architecture: parts[1]}
	case 3:
		p = ocispec.Platform{OS: parts[0], Architecture: parts[1], Variant: parts[2]}
	default:
		return ocispec.Platform{}, errors.Errorf("platform %q: want os/arch[/variant], such as linux/amd64 or linux/arm64/v8", s)
	}
	for _, part := range parts {
		if part == "" {
			return ocispec.Platform{}, errors.Errorf("platform %q: want os/arch[/variant], such as linux/amd64 or linux/arm64/v8", s)
		}
	}
	return normalizePlatform(p), nil
}

// FormatPlatform is os/arch[/variant].
func FormatPlatform(p ocispec.Platform) string {
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// normalizePlatform maps architecture aliases to Go's names and drops the
// default variants (arm64's v8), so that equal platforms compare equal.
func normalizePlatform(p ocispec.Platform) ocispec.Platform {
	p.OS = strings.ToLower(p.OS)
	p.Architecture = strings.ToLower(p.Architecture)
	p.Variant = strings.ToLower(p.Variant)
	switch p.Architecture {
	case "i386", "i686", "x86":
		p.Architecture = "386"
	case "x86_64", "x86-64", "amd64":
		p.Architecture = "amd64"
		if p.Variant == "v1" {
			p.Variant = ""
		}
	case "aarch64", "arm64":
		p.Architecture = "arm64"
		if p.Variant == "v8" || p.Variant == "8" {
			p.Variant = ""
		}
	case "armhf":
		p.Architecture, p.Variant = "arm", "v7"
	case "armel":
		p.Architecture, p.Variant = "arm", "v6"
	case "arm":
		switch p.Variant {
		case "", "7":
			p.Variant = "v7"
		case "5", "6", "8":
			p.Variant = "v" + p.Variant
		}
	}
	return p
}

// platformMatches says whether a descriptor's platform in an index serves
// the wanted one: same os and architecture, and the same variant when one
// is wanted (normalized on both sides).
func platformMatches(want, have ocispec.Platform) bool {
	want, have = normalizePlatform(want), normalizePlatform(have)
	if want.OS != have.OS || want.Architecture != have.Architecture {
		return false
	}
	return want.Variant == "" || want.Variant == have.Variant
}
