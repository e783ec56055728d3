package client

import (
	"net/url"
	"strings"

	"github.com/pkg/errors"
)

// Docker image references, as github.com/distribution/reference parses
// them (containerd and ctr use that package): the grammar, the
// normalization of a familiar name ("redis" → "docker.io/library/redis:latest")
// and its inverse. Written out here so the CLI needs no further module.

const (
	defaultDomain       = "docker.io"
	legacyDefaultDomain = "index.docker.io"
	officialRepoPrefix  = "library/"
	nameTotalLengthMax  = 255
)

// digestHexLengths are the digest algorithms a reference may pin, with
// the length of their hex.
var digestHexLengths = map[string]int{"sha256": 64, "sha384": 96, "sha512": 128}

// dockerRef is a parsed Docker reference: domain/path[:tag][@digest].
type dockerRef struct {
	domain, path, tag, digest string
}

// String is the full, normalized form: docker.io/library/redis:latest.
func (r dockerRef) String() string {
	s := r.domain + "/" + r.path
	if r.tag != "" {
		s += ":" + r.tag
	}
	if r.digest != "" {
		s += "@" + r.digest
	}
	return s
}

// familiar is the short form docker prints and writes in RepoTags:
// docker.io/library/redis:latest → redis:latest.
func (r dockerRef) familiar() string {
	f := r
	if f.domain == defaultDomain {
		s := strings.TrimPrefix(f.path, officialRepoPrefix)
		if strings.Contains(s, "/") {
			s = f.path
		}
		f.path = s
		full := f.String()
		return strings.TrimPrefix(full, defaultDomain+"/")
	}
	return f.String()
}

// parseNormalizedNamed parses a familiar or full reference and fills in
// Docker Hub's defaults, as reference.ParseNormalizedNamed does: "redis"
// → docker.io/library/redis, "foo/bar" → docker.io/foo/bar. It adds no tag.
func parseNormalizedNamed(s string) (dockerRef, error) {
	if isHexIdentifier(s) {
		return dockerRef{}, errors.Errorf("invalid repository name %q: cannot specify 64-byte hexadecimal strings", s)
	}
	domain, remainder := splitDockerDomain(s)
	remoteName := remainder
	if i := strings.IndexAny(remainder, ":@"); i >= 0 {
		remoteName = remainder[:i]
	}
	if strings.ToLower(remoteName) != remoteName {
		return dockerRef{}, errors.Errorf("invalid reference %q: repository name %q must be lowercase", s, remoteName)
	}
	name, tag, dgst, ok := matchReference(domain + "/" + remainder)
	if !ok {
		return dockerRef{}, errors.Errorf("invalid reference %q: not a valid image reference", s)
	}
	if len(name) > nameTotalLengthMax {
		return dockerRef{}, errors.Errorf("invalid reference %q: repository name over %d characters", s, nameTotalLengthMax)
	}
	r := dockerRef{tag: tag, digest: dgst}
	r.domain, r.path, _ = strings.Cut(name, "/")
	if r.digest != "" {
		alg, hex, _ := strings.Cut(r.digest, ":")
		if n, ok := digestHexLengths[alg]; !ok || len(hex) != n || strings.ToLower(hex) != hex {
			return dockerRef{}, errors.Errorf("invalid reference %q: invalid digest %q", s, r.digest)
		}
	}
	return r, nil
}

// splitDockerDomain splits the registry from a name the way Docker does:
// the first component is a registry when it has a '.' or a ':', is
// "localhost", or has an upper-case letter; otherwise the name is on
// Docker Hub, and a single-component Docker Hub name is an official image.
func splitDockerDomain(name string) (domain, remainder string) {
	i := strings.IndexRune(name, '/')
	if i == -1 || (!strings.ContainsAny(name[:i], ".:") && name[:i] != "localhost" && strings.ToLower(name[:i]) == name[:i]) {
		domain, remainder = defaultDomain, name
	} else {
		domain, remainder = name[:i], name[i+1:]
	}
	if domain == legacyDefaultDomain {
		domain = defaultDomain
	}
	if domain == defaultDomain && !strings.ContainsRune(remainder, '/') {
		remainder = officialRepoPrefix + remainder
	}
	return domain, remainder
}

// NormalizeDockerRef is containerd's normalization of a RepoTag from a
// docker save archive (reference.ParseDockerRef): "redis:latest" →
// "docker.io/library/redis:latest", "redis" → "docker.io/library/redis:latest",
// and a reference with both tag and digest keeps only the digest.
func NormalizeDockerRef(s string) (string, error) {
	r, err := parseNormalizedNamed(s)
	if err != nil {
		return "", err
	}
	if r.digest != "" {
		r.tag = ""
	} else if r.tag == "" {
		r.tag = "latest"
	}
	return r.String(), nil
}

// FamiliarDockerRef is the RepoTag a docker save archive carries for image
// name: "docker.io/library/redis:latest" → "redis:latest" (containerd's
// exporter writes the same). ok is false for a name that is not a tagged
// Docker reference (a digest reference, or a ref nsfs allows but Docker
// does not, like "my app/v1"): docker's manifest.json has no place for it.
func FamiliarDockerRef(name string) (string, bool) {
	r, err := parseNormalizedNamed(name)
	if err != nil || r.digest != "" {
		return "", false
	}
	if r.tag == "" {
		r.tag = "latest"
	}
	return r.familiar(), true
}

// OCIRefName is the org.opencontainers.image.ref.name annotation
// containerd's exporter writes for image name: the part after the
// repository, "docker.io/library/redis:latest" → "latest" (and
// "…@sha256:…" → "@sha256:…"); the io.containerd.image.name annotation
// carries the whole name. A name that is no "host/path:object" reference
// is its own ref name.
func OCIRefName(name string) string {
	if strings.Contains(name, "://") {
		return name
	}
	u, err := url.Parse("dummy://" + name)
	if err != nil || u.Scheme != "dummy" || u.Host == "" {
		return name
	}
	if i := strings.IndexAny(u.Path, ":@"); i >= 0 {
		object := u.Path[i:]
		if object[0] == ':' {
			object = object[1:]
		}
		if object != "" {
			return object
		}
	}
	return name
}

// ImportRefTranslator names an image of an OCI layout the way ctr import
// does (archive.AddRefPrefix): a ref name that is only a tag ("latest")
// becomes prefix:tag ("import-2026-11-27:latest"), where prefix is
// --base-name or "import-<date>"; a ref name with a '/', ':' or '@' is a
// full name and is kept as it is.
func ImportRefTranslator(prefix string) func(string) string {
	return func(ref string) string {
		if strings.ContainsAny(ref, "/:@") {
			return ref
		}
		return prefix + ":" + ref
	}
}
