package client

import (
	"math/rand"
	"regexp"
	"strings"
	"testing"
)

// referenceOracle is github.com/distribution/reference's grammar as its
// regexp.go writes it: matchReference must agree with it on every string.
var referenceOracle = func() *regexp.Regexp {
	alphanumeric := `[a-z0-9]+`
	separator := `(?:[._]|__|[-]+)`
	pathComponent := alphanumeric + `(?:` + separator + alphanumeric + `)*`
	domainComponent := `(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])`
	domainName := domainComponent + `(?:\.` + domainComponent + `)*`
	ipv6address := `\[(?:[a-fA-F0-9:]+)\]`
	domainAndPort := `(?:` + domainName + `|` + ipv6address + `)(?::[0-9]+)?`
	tag := `[\w][\w.-]{0,127}`
	digest := `[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*[:][[:xdigit:]]{32,}`
	name := `(?:` + domainAndPort + `/)?` + pathComponent + `(?:/` + pathComponent + `)*`
	return regexp.MustCompile(`^(` + name + `)(?::(` + tag + `))?(?:@(` + digest + `))?$`)
}()

var hexIdentifierOracle = regexp.MustCompile(`^[a-f0-9]{64}$`)

// checkAgainstOracle says whether s is a reference.
func checkAgainstOracle(t *testing.T, s string) bool {
	t.Helper()
	name, tag, dgst, ok := matchReference(s)
	m := referenceOracle.FindStringSubmatch(s)
	switch {
	case (m != nil) != ok:
		t.Errorf("matchReference(%q) ok = %v, the grammar's regexp says %v", s, ok, m != nil)
	case ok && (name != m[1] || tag != m[2] || dgst != m[3]):
		t.Errorf("matchReference(%q) = %q, %q, %q; the grammar's regexp says %q, %q, %q", s, name, tag, dgst, m[1], m[2], m[3])
	}
	if isHexIdentifier(s) != hexIdentifierOracle.MatchString(s) {
		t.Errorf("isHexIdentifier(%q) = %v, wrong", s, isHexIdentifier(s))
	}
	return ok
}

func TestMatchReferenceAgreesWithTheGrammar(t *testing.T) {
	t.Parallel()
	hex := strings.Repeat("0123456789abcdef", 4)
	cases := []string{
		"", "a", "docker.io/library/redis", "docker.io/library/redis:7.2-alpine",
		"localhost:5000/team/app:v1", "Registry.Example.com/app", "[::1]:5000/app:1",
		"[::1]/app", "[]/app", "[::1]:/app", "[::1]x/app", "[::1/app", "a:5000", "a:5000/b",
		"docker.io/library/redis@sha256:" + hex, "docker.io/r:7@sha256:" + hex,
		"a@sha256:abc", "a@sha256:" + hex[:31], "a@sha256:" + hex[:32], "a@Sha-256+x.y:" + hex[:32], "a@1sha:" + hex, "a@sha-:" + hex, "a@sha:" + hex + "@x",
		"a//b", "a/", "/a", "a:", "a:b:c", "a:" + strings.Repeat("t", 128), "a:" + strings.Repeat("t", 129),
		"a:_x", "a:.x", "a:-x", "a:x.-_", "a__b", "a___b", "a_.b", "a._b", "a--b", "a-", "-a", "a.b.c",
		"a-b.c/d", "-a.b/c", "a-.b/c", "a.b-/c", "a..b/c", "A/b", "a/B", "a/b_c/d__e/f---g", "x.y:80/a:b@sha256:" + hex,
		hex, strings.ToUpper(hex), hex[:63], hex + "0", "a/" + hex,
	}
	for _, s := range cases {
		checkAgainstOracle(t, s)
	}
	// Random strings over the grammar's own characters, and valid
	// references with one character changed.
	rng := rand.New(rand.NewSource(1))
	const alphabet = "abAZ09_.-:/@[]+fF"
	matched := 0
	for i := 0; i < 50000; i++ {
		b := make([]byte, rng.Intn(12))
		for j := range b {
			b[j] = alphabet[rng.Intn(len(alphabet))]
		}
		if checkAgainstOracle(t, string(b)) {
			matched++
		}
	}
	for i := 0; i < 20000; i++ {
		s := []byte(cases[rng.Intn(len(cases))])
		if len(s) == 0 {
			continue
		}
		s[rng.Intn(len(s))] = alphabet[rng.Intn(len(alphabet))]
		if checkAgainstOracle(t, string(s)) {
			matched++
		}
	}
	t.Logf("%d references among the strings tried", matched)
	if matched < 5000 {
		t.Errorf("only %d of the strings tried are references: the test says little", matched)
	}
}

func BenchmarkNormalizeDockerRef(b *testing.B) {
	for b.Loop() {
		if _, err := NormalizeDockerRef("127.0.0.1:5000/bench/big:v1"); err != nil {
			b.Fatal(err)
		}
	}
}
