package metadata

// Fuzz targets for what users and the disk hand to metadata: namespace
// names, refs, labels, manifests, and the image records read back from
// bbolt. Each checks properties, not only the absence of a panic. The seed
// corpus is in testdata/fuzz/<Target>/; `make fuzz` runs each for a while.

import (
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// containerdNamespaceRule is containerd's identifier rule written out by
// hand (alphanumeric runs joined by single '.', '_' or '-'; 1..76 bytes),
// an oracle independent of the regexp ValidateNamespace uses.
func containerdNamespaceRule(name string) bool {
	if name == "" || len(name) > maxNamespaceLen {
		return false
	}
	runLen := 0
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
			runLen++
		case c == '.' || c == '_' || c == '-':
			if runLen == 0 {
				return false
			}
			runLen = 0
		default:
			return false
		}
	}
	return runLen > 0
}

// FuzzValidateNamespace: a name is accepted exactly when containerd's rule
// holds; an accepted name is one path component; a refusal is
// ErrInvalidArgument, or ErrNameTooLong over 255 bytes.
func FuzzValidateNamespace(f *testing.F) {
	for _, s := range []string{"default", "a", "foo.bar-baz_1", "-a", "a..b", "a.", "", strings.Repeat("a", 76), strings.Repeat("a", 77), strings.Repeat("a", 256), "é", "a/b", "..", "a\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		err := ValidateNamespace(name)
		if want := containerdNamespaceRule(name); (err == nil) != want {
			t.Fatalf("ValidateNamespace(%q) = %v, containerd's rule says valid=%v", name, err, want)
		}
		if err != nil {
			if tooLong := len(name) > maxNameLen; IsNameTooLong(err) != tooLong || (!tooLong && !IsInvalidArgument(err)) {
				t.Fatalf("ValidateNamespace(%q) (%d bytes): error %v has the wrong kind", name, len(name), err)
			}
			if !strings.Contains(err.Error(), "namespace name") {
				t.Fatalf("ValidateNamespace(%q): error %q does not say what was refused", name, err)
			}
			return
		}
		if filepath.Base(name) != name || name == "." || name == ".." || strings.ContainsAny(name, "/\x00") {
			t.Fatalf("ValidateNamespace accepted %q, which is not one path component", name)
		}
	})
}

// refIsCleanRelativePath is the definition of a ref (ValidateRef's comment), stated with
// the path package instead of ValidateRef's loop: non-empty, no control
// character (NUL included), filepath.Clean leaves it as it is, relative,
// no ".." component, no component over 255 bytes, at most 4096 bytes.
func refIsCleanRelativePath(ref string) bool {
	if ref == "" || ref == "." || hasControl(ref) || len(ref) > maxRefLen ||
		filepath.Clean(ref) != ref || filepath.IsAbs(ref) {
		return false
	}
	for _, c := range strings.Split(ref, "/") {
		if c == ".." || len(c) > maxRefComponent {
			return false
		}
	}
	return true
}

// hasControl: a byte below 0x20 or DEL, a C1 control (U+0080-U+009F), or
// a lone byte 0x80-0x9f that is not UTF-8, written apart from
// ValidateRef's loop (strings.ContainsFunc sees a lone byte as RuneError,
// so the bytes are looked at with utf8.DecodeRuneInString).
func hasControl(s string) bool {
	for len(s) > 0 {
		r, n := utf8.DecodeRuneInString(s)
		switch {
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r <= 0x9f):
			return true
		case r == utf8.RuneError && n == 1 && s[0] >= 0x80 && s[0] <= 0x9f:
			return true
		}
		s = s[n:]
	}
	return false
}

// FuzzValidateRef: a ref is accepted exactly when it is a clean relative
// path within the limits; an accepted ref stays below the directory it is
// joined to and splits into its components; a refusal is
// ErrInvalidArgument or ErrNameTooLong.
func FuzzValidateRef(f *testing.F) {
	for _, s := range []string{"docker.io/library/redis:latest", "a", "../../etc/passwd", "foo//bar", "/abs", "a/", "./a", "a/./b", "a/..", "..a/b..",
		strings.Repeat("c", 255), strings.Repeat("c", 256), strings.Repeat("a/", 2048) + "a", strings.Repeat("d/", 10000), "a\x00b", "app@sha256:0123", ".",
		"a\tb", "a\x7fb", "\x1b[31mred", "app: v1 ", `it's\"q\\`, "caf\u00e9", "a\u009bb"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, ref string) {
		err := ValidateRef(ref)
		if want := refIsCleanRelativePath(ref); (err == nil) != want {
			t.Fatalf("ValidateRef(%q) = %v, want valid=%v (a ref is a clean relative path)", shortRef(ref), err, want)
		}
		if err != nil {
			if !IsInvalidArgument(err) && !IsNameTooLong(err) {
				t.Fatalf("ValidateRef(%q): error %v is neither ErrInvalidArgument nor ErrNameTooLong", shortRef(ref), err)
			}
			// Refused for its length alone: the errno must say so.
			if len(ref) > maxRefLen && !hasControl(ref) && !IsNameTooLong(err) {
				t.Fatalf("ValidateRef of %d bytes: error %v, want ErrNameTooLong", len(ref), err)
			}
			return
		}
		const root = "/store/ns/default/images"
		if joined := filepath.Join(root, ref); !strings.HasPrefix(joined, root+"/") || joined[len(root)+1:] != ref {
			t.Fatalf("ValidateRef accepted %q, which joined to %s gives %s", shortRef(ref), root, joined)
		}
		if parts := strings.Split(ref, "/"); filepath.Join(parts...) != ref {
			t.Fatalf("ValidateRef accepted %q, whose components do not join back to it", shortRef(ref))
		}
	})
}

func shortRef(ref string) string {
	if len(ref) > 100 {
		return ref[:100] + "..."
	}
	return ref
}

// FuzzValidateLabel: accepted exactly when the key is non-empty and key
// and value fit in 4096 bytes together.
func FuzzValidateLabel(f *testing.F) {
	f.Add("team", "infra")
	f.Add("", "v")
	f.Add("k", strings.Repeat("v", 4095))
	f.Add("k", strings.Repeat("v", 4096))
	f.Add("containerd.io/namespace.shareable", "true")
	f.Fuzz(func(t *testing.T, key, value string) {
		err := ValidateLabel(key, value)
		switch {
		case key == "":
			if !IsInvalidArgument(err) {
				t.Fatalf("ValidateLabel with an empty key = %v, want ErrInvalidArgument", err)
			}
		case len(key)+len(value) > MaxLabelSize:
			if !IsLabelTooLarge(err) {
				t.Fatalf("ValidateLabel of %d+%d bytes = %v, want ErrLabelTooLarge", len(key), len(value), err)
			}
		case err != nil:
			t.Fatalf("ValidateLabel(%q, %d bytes) = %v, want nil", key, len(value), err)
		}
	})
}

// FuzzDecodeImageRecord: bytes read back from bbolt (perhaps damaged)
// decode or are refused as corrupt, never panic; what decodes encodes to
// a record that decodes the same.
func FuzzDecodeImageRecord(f *testing.F) {
	good := imageRecord{id: 7, createdAt: time.Unix(1, 2).UTC(), updatedAt: time.Unix(3, 4).UTC(),
		target: ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.Digest("sha256:" + strings.Repeat("e", 64)), Size: 477}}
	f.Add(good.encode())
	f.Add(good.encode()[:20])
	f.Add([]byte{imageRecordVersion})
	f.Add(append([]byte{imageRecordVersion}, make([]byte, 32+2)...))
	f.Add(append(append([]byte{imageRecordVersion}, make([]byte, 32)...), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodeImageRecord(b)
		if err != nil {
			if !strings.Contains(err.Error(), "image record") {
				t.Fatalf("decodeImageRecord error %q does not say what is corrupt", err)
			}
			return
		}
		again, err := decodeImageRecord(r.encode())
		if err != nil {
			t.Fatalf("a decoded record does not decode once encoded: %v", err)
		}
		if !reflect.DeepEqual(again, r) {
			t.Fatalf("decode(encode(r)) = %+v, r = %+v", again, r)
		}
	})
}

// FuzzImageRecordRoundTrip: every record encodes to bytes that decode to
// it.
func FuzzImageRecordRoundTrip(f *testing.F) {
	f.Add(uint64(1), int64(0), int64(1), int64(477), ocispec.MediaTypeImageManifest, "sha256:"+strings.Repeat("e", 64))
	f.Add(uint64(1<<63), int64(-1), int64(1<<62), int64(-5), "", "")
	f.Fuzz(func(t *testing.T, id uint64, created, updated, size int64, mediaType, dg string) {
		r := imageRecord{id: id, createdAt: time.Unix(0, created).UTC(), updatedAt: time.Unix(0, updated).UTC(),
			target: ocispec.Descriptor{MediaType: mediaType, Digest: digest.Digest(dg), Size: size}}
		got, err := decodeImageRecord(r.encode())
		if err != nil {
			t.Fatalf("decode(encode(%+v)): %v", r, err)
		}
		if !reflect.DeepEqual(got, r) {
			t.Fatalf("decode(encode(r)) = %+v, r = %+v", got, r)
		}
	})
}
