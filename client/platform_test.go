package client

import (
	"slices"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestParsePlatform(t *testing.T) {
	host := HostPlatform()
	hostOS, hostArch := host.OS, host.Architecture
	if host.Variant != "" {
		hostArch += "/" + host.Variant
	}
	for _, tc := range []struct{ in, want, err string }{
		{in: "linux/amd64", want: "linux/amd64"},
		{in: "linux/x86_64", want: "linux/amd64"},
		{in: "arm64", want: "linux/arm64"},
		{in: "linux/aarch64/v8", want: "linux/arm64"},
		{in: "linux/arm", want: "linux/arm/v7"},
		{in: "linux/armhf", want: "linux/arm/v7"},
		{in: "Linux/ARM64", want: "linux/arm64"},
		// One word: an os is that os on the host's architecture (as
		// containerd's platforms.Parse), an architecture that
		// architecture on the host's os.
		{in: "linux", want: "linux/" + hostArch},
		{in: "LINUX", want: "linux/" + hostArch},
		{in: "windows", want: "windows/" + hostArch},
		{in: "aarch64", want: hostOS + "/arm64"},
		{in: "s390x", want: hostOS + "/s390x"},
		{in: "bogus", err: `platform "bogus": unknown operating system or architecture; want os/arch[/variant], such as linux/amd64 or linux/arm64/v8`},
		{in: "", err: `platform "": want os/arch[/variant], such as linux/amd64 or linux/arm64/v8`},
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

// Of several --platform, those the index lacks are skipped, as ctr does;
// only when none is there is it an error, which lists what the index has.
func TestSelectManifestsSkipsMissingPlatforms(t *testing.T) {
	amd := ocispec.Descriptor{Digest: digest.Digest("sha256:" + strings.Repeat("a", 64)), Platform: &ocispec.Platform{OS: "linux", Architecture: "amd64"}}
	arm := ocispec.Descriptor{Digest: digest.Digest("sha256:" + strings.Repeat("b", 64)), Platform: &ocispec.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}}
	index := ocispec.Descriptor{Digest: digest.Digest("sha256:" + strings.Repeat("c", 64))}
	platforms := func(ss ...string) []ocispec.Platform {
		var out []ocispec.Platform
		for _, s := range ss {
			p, err := ParsePlatform(s)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, p)
		}
		return out
	}
	for _, tc := range []struct {
		want []string
		got  []ocispec.Descriptor
		err  string
	}{
		{want: []string{"linux/arm64"}, got: []ocispec.Descriptor{arm}},
		{want: []string{"linux/s390x", "linux/arm64"}, got: []ocispec.Descriptor{arm}},
		{want: []string{"linux/arm64", "linux/amd64", "linux/ppc64le"}, got: []ocispec.Descriptor{amd, arm}},
		{want: []string{"linux/s390x"}, err: "index " + index.Digest.String() + " has no manifest for platform linux/s390x (it has linux/amd64, linux/arm64)"},
		{want: []string{"linux/s390x", "windows/amd64"}, err: "index " + index.Digest.String() + " has no manifest for any of the platforms linux/s390x, windows/amd64 (it has linux/amd64, linux/arm64)"},
	} {
		p := &puller{opts: PullOptions{Platforms: platforms(tc.want...)}}
		got, err := p.selectManifests(index, []ocispec.Descriptor{amd, arm})
		switch {
		case tc.err != "" && (err == nil || err.Error() != tc.err):
			t.Errorf("--platform %v: got %v, %v; want error %q", tc.want, got, err, tc.err)
		case tc.err == "" && (err != nil || !slices.Equal(digestsOf(got), digestsOf(tc.got))):
			t.Errorf("--platform %v: got %v, %v; want %v", tc.want, digestsOf(got), err, digestsOf(tc.got))
		}
	}
}

func digestsOf(ds []ocispec.Descriptor) []string {
	var out []string
	for _, d := range ds {
		out = append(out, d.Digest.String())
	}
	return out
}
