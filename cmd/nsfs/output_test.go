package main

import (
	"bytes"
	"context"
	"errors"
	"os/exec"
	"testing"
	"time"
)

func TestFormatBytesLikeCtr(t *testing.T) {
	for n, want := range map[int64]string{
		0:                    "0.0 B",
		1:                    "1.0 B",
		1023:                 "1023.0 B",
		1024:                 "1.0 KiB",
		1536:                 "1.5 KiB",
		3*1024*1024 + 104858: "3.1 MiB",
		5 << 30:              "5.0 GiB",
	} {
		if got := formatBytes(n); got != want {
			t.Errorf("formatBytes(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestHumanSizeLikeDockerUnits(t *testing.T) {
	for n, want := range map[int64]string{
		0:       "0B",
		999:     "999B",
		1000:    "1kB",
		1234:    "1.234kB",
		70000:   "70kB",
		1234567: "1.235MB",
	} {
		if got := humanSize(n); got != want {
			t.Errorf("humanSize(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestHumanDurationLikeDockerUnits(t *testing.T) {
	for d, want := range map[time.Duration]string{
		500 * time.Millisecond: "Less than a second",
		time.Second:            "1 second",
		42 * time.Second:       "42 seconds",
		90 * time.Second:       "About a minute",
		10 * time.Minute:       "10 minutes",
		80 * time.Minute:       "About an hour",
		5 * time.Hour:          "5 hours",
		72 * time.Hour:         "3 days",
		21 * 24 * time.Hour:    "3 weeks",
		90 * 24 * time.Hour:    "3 months",
		800 * 24 * time.Hour:   "2 years",
	} {
		if got := humanDuration(d); got != want {
			t.Errorf("humanDuration(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestJoinLabelsSortsPairs(t *testing.T) {
	if got := joinLabels(map[string]string{"b": "2", "a": "x=y"}); got != "a=x=y,b=2" {
		t.Errorf("joinLabels = %q", got)
	}
	// What would make the column ambiguous is quoted: a blank, a comma, a
	// quote, a '=' in a key, an unprintable byte.
	got := joinLabels(map[string]string{"k=1": "v", "note": "a, b", "q": "it's", "tab": "a\tb", "plain": "x"})
	if want := `'k=1'=v,note='a, b',plain=x,q='it'\''s',tab='a'$'\t''b'`; got != want {
		t.Errorf("joinLabels = %s, want %s", got, want)
	}
	if got := joinLabels(nil); got != "" {
		t.Errorf("joinLabels(nil) = %q, want empty", got)
	}
}

func TestFailuresPrintAllButTheLast(t *testing.T) {
	var stderr bytes.Buffer
	f := failures{w: &stderr}
	if f.err() != nil {
		t.Fatal("no failure yet, but err() is not nil")
	}
	f.add(errors.New("one"))
	f.add(errors.New("two"))
	if stderr.String() != "nsfs: one\n" || f.err() == nil || f.err().Error() != "two" {
		t.Errorf("printed %q, returned %v; want the first printed and the last returned", stderr.String(), f.err())
	}
}

func TestQuoteNameLikeGNULs(t *testing.T) {
	for name, want := range map[string]string{
		"docker.io/library/redis:latest": "docker.io/library/redis:latest",
		"app@sha256:0123abc":             "app@sha256:0123abc",
		"a,b+c%d]e{f}_g-h":               "a,b+c%d]e{f}_g-h",
		"café/ü":                         "café/ü",
		"a~b#c":                          "a~b#c",
		"app: v1 ":                       "'app: v1 '",
		"app:v1 ":                        "'app:v1 '",
		" app":                           "' app'",
		"it's":                           `'it'\''s'`,
		"'":                              `\'`,
		"''":                             `\'\'`,
		"a\\b":                           `'a\b'`,
		`say "hi"`:                       `'say "hi"'`,
		"a$b":                            "'a$b'",
		"a*b?c[d]":                       "'a*b?c[d]'",
		"a;b|c&d":                        "'a;b|c&d'",
		"a=b":                            "'a=b'",
		"~home":                          "'~home'",
		"#tag":                           "'#tag'",
		"{":                              "'{'",
		"a\nb":                           `'a'$'\n''b'`,
		"\x1b[31mred":                    `$'\033''[31mred'`,
		"\x01\x02":                       `$'\001\002'`,
		"bad\xffutf8":                    `'bad'$'\377''utf8'`,
		"csi\u009b":                      `'csi'$'\302\233'`,
		"":                               "''",
	} {
		if got := quoteName(name); got != want {
			t.Errorf("quoteName(%q) = %s, want %s", name, got, want)
		}
	}
}

// TestShellQuoteRoundTrips: what shellQuote prints, a POSIX shell (with
// $'...', as bash and dash >= 0.5.12 read it) reads back as the name.
func TestShellQuoteRoundTrips(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}
	names := []string{"app: v1 ", "it's", "a\nb", "\x1b[2J", "a\\'\"$`b", "bad\xffutf8", "csi\u009b", "''", "x'"}
	for _, name := range names {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		out, err := exec.CommandContext(ctx, bash, "-c", "printf %s "+shellQuote(name)).Output()
		cancel()
		if err != nil || string(out) != name {
			t.Errorf("bash reads %s back as %q (%v), want %q", shellQuote(name), out, err, name)
		}
	}
}
