// Package mountinfo is nsfs's one reader of the kernel's mount table,
// /proc/self/mountinfo (proc(5)): which filesystem is mounted where, and
// from what source (for nsfs, the store root).
package mountinfo

import (
	"bufio"
	"bytes"
	"io"
	"os"
	"strings"
)

// Self is the mount table of the calling process's mount namespace.
const Self = "/proc/self/mountinfo"

// Entry is one mount of the table.
type Entry struct {
	Device     string // major:minor of the filesystem
	Mountpoint string // absolute, unescaped
	FSType     string // fuse.nsfs, ext4, ...
	Source     string // for nsfs, the store root; "" when the line has none
	// Options are the filesystem's own options ("super options"); for
	// FUSE they say who may use the mount: rw,user_id=0,group_id=0,allow_other.
	Options string
}

// Parse reads a mountinfo table in its order: a later entry at the same
// mountpoint is mounted on top of an earlier one. Lines it cannot make
// sense of are skipped; a read error comes back with the entries before
// it.
func Parse(r io.Reader) ([]Entry, error) {
	var entries []Entry
	scanner := bufio.NewScanner(r)
	scanner.Buffer(make([]byte, 64*1024), 1024*1024)
	for scanner.Scan() {
		if e, ok := parseLine(scanner.Text()); ok {
			entries = append(entries, e)
		}
	}
	return entries, scanner.Err()
}

// Read is Parse of the file at path (Self for the caller's own table),
// as one table that was. The kernel hands the table out a page per
// read(2), each from the table as it is then: a mount and an unmount
// between two pages show a table that never was (a mount replaced by
// another, at the same place, shows twice, or not at all). So the file
// is read until two reads in a row agree; a table that keeps changing
// for maxRereads reads is taken as last read.
func Read(path string) ([]Entry, error) {
	data, err := os.ReadFile(path)
	for i := 0; err == nil && i < maxRereads; i++ {
		var again []byte
		if again, err = os.ReadFile(path); err == nil && bytes.Equal(again, data) {
			break
		}
		data = again
	}
	if err != nil {
		return nil, err
	}
	return Parse(bytes.NewReader(data))
}

// maxRereads bounds how often Read reads a table that changes under it.
const maxRereads = 100

// At is the topmost entry mounted at mountpoint, and whether there is one.
func At(entries []Entry, mountpoint string) (Entry, bool) {
	var top Entry
	found := false
	for _, e := range entries {
		if e.Mountpoint == mountpoint {
			top, found = e, true // later lines are mounted on top
		}
	}
	return top, found
}

// parseLine reads "36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - fuse.nsfs /root rw":
// field 2 the device, field 4 the mountpoint; after the optional fields
// and "-", the type and the source.
func parseLine(line string) (Entry, bool) {
	fields := strings.Fields(line)
	sep := -1
	for i, field := range fields {
		if field == "-" {
			sep = i
			break
		}
	}
	if sep < 5 || sep+1 >= len(fields) {
		return Entry{}, false
	}
	e := Entry{Device: fields[2], Mountpoint: unescape(fields[4]), FSType: fields[sep+1]}
	if sep+2 < len(fields) {
		e.Source = unescape(fields[sep+2])
	}
	if sep+3 < len(fields) {
		e.Options = fields[sep+3]
	}
	return e, true
}

// unescape undoes mountinfo's \040-style escaping of spaces, tabs,
// newlines and backslashes.
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			o := s[i+1 : i+4]
			if o[0] >= '0' && o[0] <= '3' && o[1] >= '0' && o[1] <= '7' && o[2] >= '0' && o[2] <= '7' {
				b.WriteByte((o[0]-'0')<<6 | (o[1]-'0')<<3 | (o[2] - '0'))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
