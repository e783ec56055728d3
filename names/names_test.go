package names

import (
	"errors"
	"strings"
	"testing"

	"github.com/nsfs/nsfs/errdefs"
	"github.com/opencontainers/go-digest"
)

// TestMessages pins the text and kind of every refusal: the store, the
// filesystem's log and the CLI show them as they are.
func TestMessages(t *testing.T) {
	long := strings.Repeat("a", 300)
	for _, tc := range []struct {
		err  error
		kind error
		want string
	}{
		{ValidateNamespace(""), errdefs.ErrInvalidArgument, "namespace name is empty: invalid argument"},
		{ValidateNamespace("a..b"), errdefs.ErrInvalidArgument, `namespace name "a..b": must match ^[A-Za-z0-9]+(?:[._-](?:[A-Za-z0-9]+))*$: invalid argument`},
		{ValidateNamespace(strings.Repeat("a", 77)), errdefs.ErrInvalidArgument, `namespace name "` + strings.Repeat("a", 77) + `": 77 bytes, over the 76-byte limit: invalid argument`},
		{ValidateNamespace(long), errdefs.ErrNameTooLong, `namespace name "` + long[:64] + `...": 300 bytes, over the 76-byte limit: name too long`},
		{ValidateRef(""), errdefs.ErrInvalidArgument, "image ref is empty: invalid argument"},
		{ValidateRef("a\x00b"), errdefs.ErrInvalidArgument, `image ref "a\x00b": contains a NUL byte at byte 1: invalid argument`},
		{ValidateRef("a\tb"), errdefs.ErrInvalidArgument, `image ref "a\tb": contains control character 0x09 at byte 1: invalid argument`},
		{ValidateRef("a\u009bb"), errdefs.ErrInvalidArgument, `image ref "a\u009bb": contains control character U+009B at byte 1: invalid argument`},
		{ValidateRef("a\x9bb"), errdefs.ErrInvalidArgument, `image ref "a\x9bb": contains control character 0x9b at byte 1: invalid argument`},
		{ValidateRef("a//b"), errdefs.ErrInvalidArgument, `image ref "a//b": empty path component (a leading, trailing or doubled '/'): invalid argument`},
		{ValidateRef("a/../b"), errdefs.ErrInvalidArgument, `image ref "a/../b": path component ".." is not allowed: invalid argument`},
		{ValidateRef(long), errdefs.ErrNameTooLong, `image ref "` + long[:64] + `...": path component of 300 bytes, over the 255-byte limit: name too long`},
		{ValidateRef(strings.Repeat("a/", 2049)), errdefs.ErrNameTooLong, `image ref "` + strings.Repeat("a/", 32) + `...": 4098 bytes, over the 4096-byte limit: name too long`},
		{ValidateLabel("", "v"), errdefs.ErrInvalidArgument, "label key is empty: invalid argument"},
		{ValidateLabel("k", strings.Repeat("v", 4096)), errdefs.ErrLabelTooLarge, "label key and value length (4097 bytes) greater than maximum size (4096 bytes): label too large"},
		{CheckLabelsSize(owner("namespace \"big\""), MaxLabelsSize+8), errdefs.ErrLabelsFull, `namespace "big": its labels would take 65544 bytes, over the limit of 65536 (each label counts len(key)+len(value)+6, so that listxattr fits in 64 KiB); remove some first: labels full`},
		{ValidateLabels(owner("image \"x\""), map[string]string{"": "v"}), errdefs.ErrInvalidArgument, `image "x": label key is empty: invalid argument`},
		{ValidateDigest("sha256:AB"), errdefs.ErrInvalidArgument, `digest "sha256:AB": must be sha256: and 64 lowercase hex digits: invalid argument`},
	} {
		if tc.err == nil || tc.err.Error() != tc.want || !errors.Is(tc.err, tc.kind) {
			t.Errorf("got %v, want %q (kind %v)", tc.err, tc.want, tc.kind)
		}
	}
}

type owner string

func (o owner) String() string { return string(o) }

func TestValid(t *testing.T) {
	for _, err := range []error{
		ValidateNamespace("default"), ValidateNamespace(strings.Repeat("a", 76)),
		ValidateRef("docker.io/library/redis:latest"), ValidateRef("my app/v1 'x'"), ValidateRef(strings.Repeat("c", 255)),
		ValidateLabel("k", strings.Repeat("v", 4095)),
		ValidateLabels(owner("x"), map[string]string{"a": "1", "b": ""}),
		CheckLabelsSize(owner("x"), MaxLabelsSize),
		ValidateDigest(digest.Digest("sha256:" + strings.Repeat("e", 64))),
	} {
		if err != nil {
			t.Error(err)
		}
	}
}

// TestProblems: the …Problem functions say what the Validate functions
// say, without the object, and nothing for what is valid.
func TestProblems(t *testing.T) {
	if got := RefProblem("a//b"); got != "empty path component (a leading, trailing or doubled '/')" {
		t.Errorf("RefProblem(a//b) = %q", got)
	}
	if got := RefProblem("a/b"); got != "" {
		t.Errorf("RefProblem(a/b) = %q, want none", got)
	}
	if got := LabelProblem("k", strings.Repeat("v", 4096)); got != "key and value length (4097 bytes) greater than maximum size (4096 bytes)" {
		t.Errorf("LabelProblem = %q", got)
	}
	if got := LabelProblem("k", "v"); got != "" {
		t.Errorf("LabelProblem(k, v) = %q, want none", got)
	}
	if got := LabelsSizeProblem(MaxLabelsSize); got != "" {
		t.Errorf("LabelsSizeProblem(MaxLabelsSize) = %q, want none", got)
	}
	if got := LabelSize("k", "v"); got != 8 {
		t.Errorf(`LabelSize("k", "v") = %d, want len("user.k\x00")+len("v") = 8`, got)
	}
}
