package fs

import (
	"strconv"
	"testing"
)

// layoutBases remember one base per process, the last one, and forget
// the oldest past maxLayoutBases; a process of unknown tgid has none.
func TestLayoutBases(t *testing.T) {
	var b layoutBases
	b.remember(process{}, []byte("x"))
	if got := b.of(process{}); got != nil {
		t.Errorf("base of an unknown process: %q", got)
	}
	b.remember(process{tgid: 1}, []byte("first"))
	b.remember(process{tgid: 1}, []byte("second"))
	if got := string(b.of(process{tgid: 1})); got != "second" {
		t.Errorf("base of process 1: %q, want the last", got)
	}
	for pid := 2; pid <= maxLayoutBases+1; pid++ {
		b.remember(process{tgid: pid}, []byte(strconv.Itoa(pid)))
	}
	if got := b.of(process{tgid: 1}); got != nil {
		t.Errorf("the oldest process is still remembered past the bound: %q", got)
	}
	if got := string(b.of(process{tgid: maxLayoutBases + 1})); got != strconv.Itoa(maxLayoutBases+1) {
		t.Errorf("the newest process: %q", got)
	}
	if len(b.byProc) != maxLayoutBases {
		t.Errorf("%d bases remembered, want at most %d", len(b.byProc), maxLayoutBases)
	}
}
