package xattr

import (
	"bytes"
	"errors"
	"sort"
	"strings"
	"testing"
)

func TestKey(t *testing.T) {
	long := "user." + strings.Repeat("k", MaxNameLen-len("user."))
	tests := []struct {
		name    string
		wantKey string
		wantErr error
	}{
		{name: "user.team", wantKey: "team"},
		{name: "user.containerd.io/gc.ref.content", wantKey: "containerd.io/gc.ref.content"},
		{name: "user.user.x", wantKey: "user.x"},
		{name: "user. ", wantKey: " "},
		{name: long, wantKey: long[len("user."):]},
		{name: long + "k", wantErr: ErrNameTooLong},
		{name: "security." + strings.Repeat("s", 300), wantErr: ErrNameTooLong},
		{name: "", wantErr: ErrInvalidName},
		{name: "user.", wantErr: ErrInvalidName},
		{name: "user.a\x00b", wantErr: ErrInvalidName},
		{name: "security.selinux", wantErr: ErrNotSupported},
		{name: "security.capability", wantErr: ErrNotSupported},
		{name: "trusted.overlay.opaque", wantErr: ErrNotSupported},
		{name: "system.posix_acl_access", wantErr: ErrNotSupported},
		{name: "team", wantErr: ErrNotSupported},
		{name: "user", wantErr: ErrNotSupported},
		{name: "User.team", wantErr: ErrNotSupported},
		{name: "usertrusted.x", wantErr: ErrNotSupported},
	}
	for _, tt := range tests {
		key, err := Key(tt.name)
		if tt.wantErr != nil {
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("Key(%.40q) error = %v, want %v", tt.name, err, tt.wantErr)
			}
			if key != "" {
				t.Errorf("Key(%.40q) key = %q with an error, want empty", tt.name, key)
			}
			continue
		}
		if err != nil || key != tt.wantKey {
			t.Errorf("Key(%.40q) = %q, %v; want %q, nil", tt.name, key, err, tt.wantKey)
		}
	}
}

func TestKeyErrorNamesTheAttribute(t *testing.T) {
	_, err := Key("trusted.secret")
	if err == nil || !strings.Contains(err.Error(), `"trusted.secret"`) {
		t.Fatalf("Key error %q does not name the attribute", err)
	}
}

func TestName(t *testing.T) {
	tests := []struct{ key, want string }{
		{"team", "user.team"},
		{"containerd.io/namespace.shareable", "user.containerd.io/namespace.shareable"},
		{"user.x", "user.user.x"},
	}
	for _, tt := range tests {
		if got := Name(tt.key); got != tt.want {
			t.Errorf("Name(%q) = %q, want %q", tt.key, got, tt.want)
		}
		if back, err := Key(Name(tt.key)); err != nil || back != tt.key {
			t.Errorf("Key(Name(%q)) = %q, %v", tt.key, back, err)
		}
	}
}

func TestParseFlags(t *testing.T) {
	tests := []struct {
		flags   uint32
		want    Condition
		wantErr bool
	}{
		{flags: 0, want: Always},
		{flags: FlagCreate, want: IfAbsent},
		{flags: FlagReplace, want: IfPresent},
		{flags: FlagCreate | FlagReplace, wantErr: true},
		{flags: 0x4, wantErr: true},
		{flags: FlagCreate | 0x100, wantErr: true},
		{flags: 0xffffffff, wantErr: true},
	}
	for _, tt := range tests {
		got, err := ParseFlags(tt.flags)
		if tt.wantErr {
			if !errors.Is(err, ErrInvalidFlags) {
				t.Errorf("ParseFlags(%#x) error = %v, want ErrInvalidFlags", tt.flags, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseFlags(%#x) = %v, %v; want %v, nil", tt.flags, got, err, tt.want)
		}
	}
}

// XATTR_CREATE with an empty value would create nothing (an empty value
// removes): refused, whatever the label's state. The other conditions
// take an empty value.
func TestConditionCheckValue(t *testing.T) {
	err := IfAbsent.CheckValue(nil)
	if !errors.Is(err, ErrInvalidFlags) {
		t.Fatalf("XATTR_CREATE with no value: %v, want ErrInvalidFlags", err)
	}
	if want := "an empty value removes a label; XATTR_CREATE with an empty value would create nothing"; !strings.Contains(err.Error(), want) {
		t.Errorf("message %q, want it to say %q", err, want)
	}
	if err := IfAbsent.CheckValue([]byte{}); !errors.Is(err, ErrInvalidFlags) {
		t.Errorf("XATTR_CREATE with an empty value: %v, want ErrInvalidFlags", err)
	}
	for _, c := range []Condition{Always, IfPresent} {
		if err := c.CheckValue(nil); err != nil {
			t.Errorf("%v with an empty value: %v, want nil (it removes)", c, err)
		}
	}
	for _, c := range []Condition{Always, IfAbsent, IfPresent} {
		if err := c.CheckValue([]byte("v")); err != nil {
			t.Errorf("%v with a value: %v", c, err)
		}
	}
	// XATTR_REPLACE of an absent label is ErrNoData, empty value or not.
	if err := IfPresent.Check(false); !errors.Is(err, ErrNoData) {
		t.Errorf("XATTR_REPLACE of an absent label: %v, want ErrNoData", err)
	}
}

func TestConditionCheck(t *testing.T) {
	tests := []struct {
		cond    Condition
		exists  bool
		wantErr error
	}{
		{Always, false, nil},
		{Always, true, nil},
		{IfAbsent, false, nil},
		{IfAbsent, true, ErrExists},
		{IfPresent, true, nil},
		{IfPresent, false, ErrNoData},
	}
	for _, tt := range tests {
		err := tt.cond.Check(tt.exists)
		if tt.wantErr == nil && err != nil {
			t.Errorf("%v.Check(%v) = %v, want nil", tt.cond, tt.exists, err)
		}
		if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
			t.Errorf("%v.Check(%v) = %v, want %v", tt.cond, tt.exists, err, tt.wantErr)
		}
	}
}

func TestConditionString(t *testing.T) {
	for c, want := range map[Condition]string{Always: "no flag", IfAbsent: "XATTR_CREATE", IfPresent: "XATTR_REPLACE", 12: "Condition(12)"} {
		if got := c.String(); got != want {
			t.Errorf("Condition(%d).String() = %q, want %q", int(c), got, want)
		}
	}
}

func TestGet(t *testing.T) {
	tests := []struct {
		desc    string
		destLen int
		value   string
		wantN   uint32
		wantErr error
	}{
		{desc: "size probe", destLen: 0, value: "blue", wantN: 4, wantErr: ErrRange},
		{desc: "too small", destLen: 3, value: "blue", wantN: 4, wantErr: ErrRange},
		{desc: "exact", destLen: 4, value: "blue", wantN: 4},
		{desc: "larger", destLen: 100, value: "blue", wantN: 4},
		{desc: "empty value, probe", destLen: 0, value: "", wantN: 0},
		{desc: "binary", destLen: 8, value: "a\x00b\xff", wantN: 4},
	}
	for _, tt := range tests {
		dest := bytes.Repeat([]byte{'#'}, tt.destLen)
		n, err := Get(dest, tt.value)
		if n != tt.wantN {
			t.Errorf("%s: Get n = %d, want %d", tt.desc, n, tt.wantN)
		}
		if tt.wantErr != nil {
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("%s: Get error = %v, want %v", tt.desc, err, tt.wantErr)
			}
			if !bytes.Equal(dest, bytes.Repeat([]byte{'#'}, tt.destLen)) {
				t.Errorf("%s: Get wrote %q into a buffer it refused", tt.desc, dest)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: Get error = %v", tt.desc, err)
		}
		if got := string(dest[:n]); got != tt.value {
			t.Errorf("%s: Get copied %q, want %q", tt.desc, got, tt.value)
		}
	}
}

func TestList(t *testing.T) {
	tests := []struct {
		desc    string
		destLen int
		keys    []string
		want    string
		wantN   uint32
		wantErr error
	}{
		{desc: "no labels", destLen: 0, keys: nil, want: "", wantN: 0},
		{desc: "no labels, big buffer", destLen: 10, keys: []string{}, want: "", wantN: 0},
		{desc: "size probe", destLen: 0, keys: []string{"b", "a"}, wantN: 14, wantErr: ErrRange},
		{desc: "one byte short", destLen: 13, keys: []string{"b", "a"}, wantN: 14, wantErr: ErrRange},
		{desc: "exact, sorted", destLen: 14, keys: []string{"b", "a"}, want: "user.a\x00user.b\x00", wantN: 14},
		{desc: "larger", destLen: 64, keys: []string{"team", "containerd.io/gc.root", "a"},
			want: "user.a\x00user.containerd.io/gc.root\x00user.team\x00", wantN: 44},
	}
	for _, tt := range tests {
		dest := bytes.Repeat([]byte{'#'}, tt.destLen)
		keys := append([]string(nil), tt.keys...)
		n, err := List(dest, keys)
		if n != tt.wantN {
			t.Errorf("%s: List n = %d, want %d", tt.desc, n, tt.wantN)
		}
		if strings.Join(keys, ",") != strings.Join(tt.keys, ",") {
			t.Errorf("%s: List reordered the caller's keys to %q", tt.desc, keys)
		}
		if tt.wantErr != nil {
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("%s: List error = %v, want %v", tt.desc, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: List error = %v", tt.desc, err)
		}
		if got := string(dest[:n]); got != tt.want {
			t.Errorf("%s: List wrote %q, want %q", tt.desc, got, tt.want)
		}
	}
}

// FuzzKey: Key either refuses a name or returns the key that Name maps
// back to exactly that name.
func FuzzKey(f *testing.F) {
	f.Add("user.team")
	f.Add("user.")
	f.Add("security.selinux")
	f.Add("")
	f.Add("user." + strings.Repeat("x", 251))
	f.Fuzz(func(t *testing.T, name string) {
		key, err := Key(name)
		if err != nil {
			if !errors.Is(err, ErrInvalidName) && !errors.Is(err, ErrNameTooLong) && !errors.Is(err, ErrNotSupported) {
				t.Fatalf("Key(%q) error %v is none of the documented kinds", name, err)
			}
			if strings.HasPrefix(name, UserPrefix) && len(name) > len(UserPrefix) && len(name) <= MaxNameLen &&
				!strings.Contains(name, "\x00") {
				t.Fatalf("Key(%q) refused a valid user name: %v", name, err)
			}
			return
		}
		if key == "" || len(name) > MaxNameLen || strings.Contains(key, "\x00") {
			t.Fatalf("Key(%q) = %q accepted an invalid name", name, key)
		}
		if Name(key) != name {
			t.Fatalf("Name(Key(%q)) = %q", name, Name(key))
		}
	})
}

// FuzzList: the fuzzed string is a '\n'-separated list of keys; List's
// output split on NUL gives back the sorted names, and a smaller buffer
// gets ErrRange with the exact size.
func FuzzList(f *testing.F) {
	f.Add("team\nowner")
	f.Add("b\na\nc\na.b/c")
	f.Add("")
	f.Fuzz(func(t *testing.T, joined string) {
		var keys []string
		for _, key := range strings.Split(joined, "\n") {
			// Key never yields an empty key or one with a NUL.
			if key != "" && !strings.Contains(key, "\x00") {
				keys = append(keys, key)
			}
		}
		want := make([]string, len(keys))
		size := 0
		for i, key := range keys {
			want[i] = Name(key)
			size += len(want[i]) + 1
		}
		sort.Strings(want)

		probe, err := List(nil, keys)
		if int(probe) != size {
			t.Fatalf("List probe = %d, want %d", probe, size)
		}
		if size > 0 && !errors.Is(err, ErrRange) {
			t.Fatalf("List probe error = %v, want ErrRange", err)
		}

		dest := make([]byte, size+7)
		n, err := List(dest, keys)
		if err != nil || int(n) != size {
			t.Fatalf("List = %d, %v; want %d, nil", n, err, size)
		}
		var got []string
		if n > 0 {
			if dest[n-1] != 0 {
				t.Fatalf("List output %q does not end in NUL", dest[:n])
			}
			got = strings.Split(string(dest[:n-1]), "\x00")
		}
		if strings.Join(got, "\n") != strings.Join(want, "\n") || len(got) != len(want) {
			t.Fatalf("List output splits into %q, want %q", got, want)
		}
	})
}
