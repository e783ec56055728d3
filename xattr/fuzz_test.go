package xattr

// More fuzz targets besides FuzzKey and FuzzList (xattr_test.go): the
// whole label round trip, value size probes, setxattr flags. Seed corpora
// are in testdata/fuzz/<Target>/.

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

// FuzzLabelRoundTrip: a set of label keys (the fuzzed string split on
// '\n') encoded by List and decoded as the kernel hands the list to a
// program (split on NUL, each name through Key) is the same set, sorted;
// and Key(Name(k)) == k for every key that fits in an xattr name.
func FuzzLabelRoundTrip(f *testing.F) {
	f.Add("team\nowner")
	f.Add("containerd.io/gc.ref.content.l.0\ncontainerd.io/gc.ref.content.config")
	f.Add("k\nk")
	f.Add("é\n\t\n ")
	f.Add(strings.Repeat("x", 250))
	f.Fuzz(func(t *testing.T, joined string) {
		var keys []string
		for _, key := range strings.Split(joined, "\n") {
			// What Key can yield: non-empty, no NUL, within XATTR_NAME_MAX.
			if key != "" && !strings.Contains(key, "\x00") && len(Name(key)) <= MaxNameLen {
				keys = append(keys, key)
			}
		}
		for _, key := range keys {
			if got, err := Key(Name(key)); err != nil || got != key {
				t.Fatalf("Key(Name(%q)) = %q, %v", key, got, err)
			}
		}
		size, _ := List(nil, keys)
		buf := make([]byte, size)
		n, err := List(buf, keys)
		if err != nil || n != size {
			t.Fatalf("List into a buffer of the probed size %d: %d, %v", size, n, err)
		}
		var decoded []string
		for _, name := range strings.Split(string(buf[:n]), "\x00") {
			if name == "" {
				continue
			}
			key, err := Key(name)
			if err != nil {
				t.Fatalf("List wrote %q, which Key refuses: %v", name, err)
			}
			decoded = append(decoded, key)
		}
		want := slices.Clone(keys)
		slices.Sort(want)
		if !slices.Equal(decoded, want) {
			t.Fatalf("decode(List(%q)) = %q, want %q", keys, decoded, want)
		}
	})
}

// FuzzGet: a buffer at least as long as the value gets the value and its
// length; a shorter one gets ErrRange with the length, and is not written.
func FuzzGet(f *testing.F) {
	f.Add("infra", uint16(5))
	f.Add("infra", uint16(4))
	f.Add("", uint16(0))
	f.Add(strings.Repeat("v", 4096), uint16(4095))
	f.Fuzz(func(t *testing.T, value string, destLen uint16) {
		dest := make([]byte, destLen)
		for i := range dest {
			dest[i] = 0xa5
		}
		n, err := Get(dest, value)
		if int(n) != len(value) {
			t.Fatalf("Get(%d-byte buffer, %d-byte value) = %d", destLen, len(value), n)
		}
		if int(destLen) < len(value) {
			if !errors.Is(err, ErrRange) {
				t.Fatalf("Get into a buffer too small: %v, want ErrRange", err)
			}
			for _, b := range dest {
				if b != 0xa5 {
					t.Fatalf("Get wrote into a buffer too small for the value")
				}
			}
			return
		}
		if err != nil || string(dest[:n]) != value {
			t.Fatalf("Get = %q, %v; want %q", dest[:n], err, value)
		}
	})
}

// FuzzParseFlags: only 0, XATTR_CREATE and XATTR_REPLACE are accepted, and
// the Condition does what setxattr(2) says of the flag.
func FuzzParseFlags(f *testing.F) {
	for _, fl := range []uint32{0, FlagCreate, FlagReplace, FlagCreate | FlagReplace, 4, 1 << 31} {
		f.Add(fl)
	}
	f.Fuzz(func(t *testing.T, flags uint32) {
		c, err := ParseFlags(flags)
		if flags > FlagReplace || flags == FlagCreate|FlagReplace {
			if !errors.Is(err, ErrInvalidFlags) {
				t.Fatalf("ParseFlags(%#x) = %v, %v; want ErrInvalidFlags", flags, c, err)
			}
			return
		}
		if err != nil {
			t.Fatalf("ParseFlags(%#x): %v", flags, err)
		}
		for _, exists := range []bool{false, true} {
			err := c.Check(exists)
			switch {
			case flags == FlagCreate && exists:
				if !errors.Is(err, ErrExists) {
					t.Fatalf("XATTR_CREATE of an existing label: %v, want ErrExists", err)
				}
			case flags == FlagReplace && !exists:
				if !errors.Is(err, ErrNoData) {
					t.Fatalf("XATTR_REPLACE of an absent label: %v, want ErrNoData", err)
				}
			case err != nil:
				t.Fatalf("%v.Check(exists=%v) = %v, want nil", c, exists, err)
			}
		}
	})
}
