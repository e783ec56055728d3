package main

import (
	"errors"
	"testing"
)

func TestFusermountError(t *testing.T) {
	for in, want := range map[string]string{
		"fusermount exited with code 256\n": "fusermount exited with status 1 (its message, if any, is above)",
		"fusermount exited with code 9\n":   "fusermount was killed by signal 9 (killed)",
		"permission denied":                 "permission denied",
	} {
		if got := fusermountError(errors.New(in)).Error(); got != want {
			t.Errorf("fusermountError(%q) = %q, want %q", in, got, want)
		}
	}
	if fusermountError(nil) != nil {
		t.Error("fusermountError(nil) is not nil")
	}
}
