package main

import (
	"strings"
	"testing"
)

func TestFindLockHolder(t *testing.T) {
	locks := `1: POSIX  ADVISORY  WRITE 100 fe:00:42 0 EOF
2: FLOCK  ADVISORY  WRITE 200 08:01:1234567 0 EOF
2: -> FLOCK  ADVISORY  WRITE 300 fe:01:77 0 EOF
3: FLOCK  ADVISORY  READ 400 fe:01:77 0 EOF
`
	for _, tc := range []struct {
		major, minor uint32
		ino          uint64
		want         int
	}{
		{8, 1, 1234567, 200},
		{0xfe, 0, 42, 100},
		{0xfe, 1, 77, 400}, // the waiting lock (->) holds nothing
		{0xfe, 0, 1234567, 0},
		{8, 1, 123456, 0},
	} {
		if got := findLockHolder(strings.NewReader(locks), tc.major, tc.minor, tc.ino); got != tc.want {
			t.Errorf("findLockHolder(%x:%x:%d) = %d, want %d", tc.major, tc.minor, tc.ino, got, tc.want)
		}
	}
}
