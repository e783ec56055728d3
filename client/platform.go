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
// linux/arm/v7), with the architecture aliases containerd knows (x86_64,
// aarch64, armhf, ...), or one word, as containerd's platforms.Parse: a
// known os (linux) is that os on the host's architecture, a known
// architecture (arm64) is that architecture on the host's os.
func ParsePlatform(s string) (ocispec.Platform, error) {
	parts := strings.Split(strings.ToLower(s), "/")
	for _, part := range parts {
		if part == "" {
			return ocispec.Platform{}, errors.Errorf("platform %q: want os/arch[/variant], such as linux/amd64 or linux/arm64/v8", s)
		}
	}
	var p ocispec.Platform
	switch len(parts) {
	case 1:
		word := parts[0]
		if word == "macos" {
			word = "darwin"
		}
		if knownOS[word] {
			host := HostPlatform()
			return normalizePlatform(ocispec.Platform{OS: word, Architecture: host.Architecture, Variant: host.Variant}), nil
		}
		p = normalizePlatform(ocispec.Platform{OS: HostPlatform().OS, Architecture: word})
		if !knownArch[p.Architecture] {
			return ocispec.Platform{}, errors.Errorf("platform %q: unknown operating system or architecture; want os/arch[/variant], such as linux/amd64 or linux/arm64/v8", s)
		}
		return p, nil
	case 2:
		p = ocispec.Platform{OS: parts[0], Architecture: parts[1]}
	case 3:
		p = ocispec.Platform{OS: parts[0], Architecture: parts[1], Variant: parts[2]}
	default:
		return ocispec.Platform{}, errors.Errorf("platform %q: want os/arch[/variant], such as linux/amd64 or linux/arm64/v8", s)
	}
	return normalizePlatform(p), nil
}

// The operating systems and architectures Go knows (GOOS, GOARCH), which
// are those containerd tells apart in a one-word platform.
var (
	knownOS = setOf("aix", "android", "darwin", "dragonfly", "freebsd", "hurd", "illumos", "ios", "js",
		"linux", "nacl", "netbsd", "openbsd", "plan9", "solaris", "wasip1", "windows", "zos")
	knownArch = setOf("386", "amd64", "amd64p32", "arm", "armbe", "arm64", "arm64be", "loong64",
		"mips", "mipsle", "mips64", "mips64le", "mips64p32", "mips64p32le", "ppc", "ppc64", "ppc64le",
		"riscv", "riscv64", "s390", "s390x", "sparc", "sparc64", "wasm")
)

func setOf(words ...string) map[string]bool {
	m := make(map[string]bool, len(words))
	for _, w := range words {
		m[w] = true
	}
	return m
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
