package client

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

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

// The sum of the labels of a namespace is bounded as the filesystem
// bounds it: checked before anything is set; removals and changes that
// shrink the labels pass even over the limit.
func TestCheckLabelsFit(t *testing.T) {
	// 16 labels of 4090+6 bytes: 65536 exactly.
	full := map[string]string{}
	for i := 0; i < 16; i++ {
		full[fmt.Sprintf("k%02d", i)] = strings.Repeat("v", 4090-3)
	}
	if err := checkLabelsFit("foo", nil, full); err != nil {
		t.Fatalf("labels of exactly 65536 bytes: %v", err)
	}
	err := checkLabelsFit("foo", full, map[string]string{"x": "1"})
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), `namespace "foo": its labels would take 65544 bytes, over the limit of 65536`) {
		t.Fatalf("one more label on a full namespace: %v", err)
	}
	if err := checkLabelsFit("foo", full, map[string]string{"k00": "short", "x": "1"}); err != nil {
		t.Errorf("replacing a long value with a short one and adding a label: %v", err)
	}
	if err := checkLabelsFit("foo", full, map[string]string{"k00": "", "absent": ""}); err != nil {
		t.Errorf("removals: %v", err)
	}
	over := map[string]string{"big": strings.Repeat("v", 4000)}
	for k, v := range full {
		over[k] = v
	}
	if err := checkLabelsFit("foo", over, map[string]string{"k01": ""}); err != nil {
		t.Errorf("a removal from labels over the limit (a store from before it): %v", err)
	}
}
