package main

import (
	"bytes"
	"testing"
)

// TestUsageErrors: a bad flag or an unknown command is an error naming
// the command as typed, and prints nothing (no help on stdout).
func TestUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"images", "ls", "-x"}, "images ls: flag provided but not defined: -x (see nsfs images ls --help)"},
		{[]string{"ns", "create", "--nope"}, "ns create: flag provided but not defined: -nope (see nsfs ns create --help)"},
		{[]string{"--nope"}, "flag provided but not defined: -nope (see nsfs --help)"},
		{[]string{"bogus"}, `unknown command "bogus" (see nsfs --help)`},
		{[]string{"content", "bogus"}, `content: unknown command "bogus" (see nsfs content --help)`},
		{[]string{"help", "bogus"}, `unknown command "bogus" (see nsfs --help)`},
		{[]string{"images", "tag", "one"}, "images tag: a SRC and at least one DST are required (usage: nsfs images tag SRC DST... [--force])"},
	} {
		app := newApp()
		var stdout, stderr bytes.Buffer
		app.Writer, app.ErrWriter = &stdout, &stderr
		err := app.Run(append([]string{"nsfs"}, tc.args...))
		if err == nil {
			err, _ = app.Metadata[commandNotFoundKey].(error)
		}
		if err == nil || err.Error() != tc.want {
			t.Errorf("nsfs %v: error %v, want %s", tc.args, err, tc.want)
		}
		if stdout.Len() != 0 || stderr.Len() != 0 {
			t.Errorf("nsfs %v printed %q on stdout and %q on stderr, want nothing", tc.args, stdout.String(), stderr.String())
		}
	}
}
