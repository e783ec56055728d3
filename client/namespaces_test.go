package client

import (
	"errors"
	"strings"
	"testing"
)

func TestParseLabels(t *testing.T) {
	got, err := ParseLabels([]string{"a=1", "bare", "gone=", "eq=x=y", "a=2"})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"a": "2", "bare": "true", "gone": "", "eq": "x=y"}
	if len(got) != len(want) {
		t.Fatalf("ParseLabels = %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("label %q = %q, want %q", k, got[k], v)
		}
	}
	if _, err := ParseLabels([]string{"=v"}); !errors.Is(err, ErrInvalid) {
		t.Errorf("ParseLabels(=v): %v, want ErrInvalid", err)
	}
}

func TestCheckLabels(t *testing.T) {
	for _, bad := range []map[string]string{
		{"k": strings.Repeat("v", 4096)},
		{strings.Repeat("k", 251): "v"},
		{"k": "a\x00b"},
	} {
		if err := checkLabels(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("checkLabels accepted a label the filesystem refuses: %v", err)
		}
	}
	if err := checkLabels(map[string]string{"k": strings.Repeat("v", 4095), "gone": ""}); err != nil {
		t.Errorf("checkLabels refused labels at the limit: %v", err)
	}
}

func TestNamespaceNames(t *testing.T) {
	m := Mount{Dir: "/mnt"}
	for _, ok := range []string{"default", "a", "A1", "a.b", "a-b_c.d", strings.Repeat("a", 76)} {
		if err := m.Namespace(ok).Check(); err != nil {
			t.Errorf("Check(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"", ".", "..", "../x", "a/b", "a..b", "-a", "a-", "a b", strings.Repeat("a", 77)} {
		if err := m.Namespace(bad).Check(); !errors.Is(err, ErrInvalid) {
			t.Errorf("Check(%q): %v, want ErrInvalid", bad, err)
		}
	}
}
