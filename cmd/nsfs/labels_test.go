package main

import (
	"errors"
	"testing"

	"github.com/nsfs/nsfs/client"
)

func TestParseLabels(t *testing.T) {
	got, err := parseLabels([]string{"a=1", "bare", "gone=", "eq=x=y", "a=2"})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"a": "2", "bare": "true", "gone": "", "eq": "x=y"}
	if len(got) != len(want) {
		t.Fatalf("parseLabels = %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("label %q = %q, want %q", k, got[k], v)
		}
	}
	_, err = parseLabels([]string{"=v"})
	if !errors.Is(err, client.ErrInvalid) || err.Error() != `label "=v": the key is empty` {
		t.Errorf("parseLabels(=v): %v, want ErrInvalid saying the key is empty", err)
	}
}
