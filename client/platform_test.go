package client

import (
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestParsePlatform(t *testing.T) {
	for _, tc := range []struct{ in, want, err string }{
		{in: "linux/amd64", want: "linux/amd64"},
		{in: "linux/x86_64", want: "linux/amd64"},
		{in: "arm64", want: "linux/arm64"},
		{in: "linux/aarch64/v8", want: "linux/arm64"},
		{in: "linux/arm", want: "linux/arm/v7"},
		{in: "linux/armhf", want: "linux/arm/v7"},
		{in: "Linux/ARM64", want: "linux/arm64"},
		{in: "linux//amd64", err: `platform "linux//amd64": want os/arch[/variant], such as linux/amd64 or linux/arm64/v8`},
		{in: "a/b/c/d", err: `platform "a/b/c/d": want os/arch[/variant], such as linux/amd64 or linux/arm64/v8`},
	} {
		p, err := ParsePlatform(tc.in)
		switch {
		case tc.err != "" && (err == nil || err.Error() != tc.err):
			t.Errorf("ParsePlatform(%q) = %v, %v; want error %q", tc.in, p, err, tc.err)
		case tc.err == "" && (err != nil || FormatPlatform(p) != tc.want):
			t.Errorf("ParsePlatform(%q) = %q, %v; want %q", tc.in, FormatPlatform(p), err, tc.want)
		}
	}
}

func TestPlatformMatches(t *testing.T) {
	for _, tc := range []struct {
		want, have ocispec.Platform
		match      bool
	}{
		{ocispec.Platform{OS: "linux", Architecture: "amd64"}, ocispec.Platform{OS: "linux", Architecture: "amd64"}, true},
		{ocispec.Platform{OS: "linux", Architecture: "arm64"}, ocispec.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}, true},
		{ocispec.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}, ocispec.Platform{OS: "linux", Architecture: "arm64"}, true},
		{ocispec.Platform{OS: "linux", Architecture: "arm", Variant: "v7"}, ocispec.Platform{OS: "linux", Architecture: "arm", Variant: "v6"}, false},
		{ocispec.Platform{OS: "linux", Architecture: "amd64"}, ocispec.Platform{OS: "linux", Architecture: "arm64"}, false},
		{ocispec.Platform{OS: "linux", Architecture: "amd64"}, ocispec.Platform{OS: "windows", Architecture: "amd64"}, false},
		{ocispec.Platform{OS: "linux", Architecture: "amd64"}, ocispec.Platform{OS: "unknown", Architecture: "unknown"}, false},
	} {
		if got := platformMatches(tc.want, tc.have); got != tc.match {
			t.Errorf("platformMatches(%s, %s) = %v, want %v", FormatPlatform(tc.want), FormatPlatform(tc.have), got, tc.match)
		}
	}
}
