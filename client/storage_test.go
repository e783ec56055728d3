package client

import (
	"bytes"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"testing/iotest"

	"oras.land/oras-go/v2/errdef"
)

// TestImagePathFollowsTheStoresRule: ImagePath refuses exactly the refs
// the store refuses (names.ValidateRef), before they become paths.
func TestImagePathFollowsTheStoresRule(t *testing.T) {
	target := Mount{Dir: "/mnt"}.Namespace("default").Target()
	for ref, want := range map[string]string{
		"redis:latest":              "/mnt/ns/default/images/redis:latest",
		"docker.io/library/redis:7": "/mnt/ns/default/images/docker.io/library/redis:7",
		"my app/v1":                 "/mnt/ns/default/images/my app/v1",
		strings.Repeat("c", 255):    "/mnt/ns/default/images/" + strings.Repeat("c", 255),
	} {
		if got, err := target.ImagePath(ref); err != nil || got != want {
			t.Errorf("ImagePath(%q) = %q, %v; want %q", ref, got, err, want)
		}
	}
	for ref, want := range map[string]string{
		"":                       `image "": empty ref: invalid reference`,
		"../x":                   `image "../x": path component ".." is not allowed: invalid reference`,
		"a//b":                   `image "a//b": empty path component (a leading, trailing or doubled '/'): invalid reference`,
		"/abs":                   `image "/abs": empty path component (a leading, trailing or doubled '/'): invalid reference`,
		"a\tb":                   `image "a\tb": contains control character 0x09 at byte 1: invalid reference`,
		strings.Repeat("c", 256): `image "` + strings.Repeat("c", 256) + `": path component of 256 bytes, over the 255-byte limit: invalid reference`,
	} {
		got, err := target.ImagePath(ref)
		if !errors.Is(err, errdef.ErrInvalidReference) || err.Error() != want {
			t.Errorf("ImagePath(%q) = %q, %v; want %s", ref, got, err, want)
		}
	}
}

// writeSizes is a file-like writer that keeps the bytes and the size of
// every write, as a FUSE mount would see them arrive.
type writeSizes struct {
	bytes.Buffer
	sizes []int
	fail  error // returned by every write once set
}

func (w *writeSizes) Write(p []byte) (int, error) {
	if w.fail != nil {
		return 0, w.fail
	}
	w.sizes = append(w.sizes, len(p))
	return w.Buffer.Write(p)
}

// TestCopyInFullWritesSendsWholeChunks: a source that returns a few KiB
// per read (a socket) still reaches the mount in writes of fullWriteSize,
// the last one shorter, with every byte in order.
func TestCopyInFullWritesSendsWholeChunks(t *testing.T) {
	data := make([]byte, 2*fullWriteSize+12345)
	for i := range data {
		data[i] = byte(i * 7)
	}
	var w writeSizes
	n, rerr, werr := copyInFullWrites(&w, iotest.HalfReader(bytes.NewReader(data)))
	if n != int64(len(data)) || rerr != nil || werr != nil {
		t.Fatalf("copyInFullWrites = %d, %v, %v; want %d, nil, nil", n, rerr, werr, len(data))
	}
	if !bytes.Equal(w.Bytes(), data) {
		t.Fatal("the bytes written differ from the source's")
	}
	if want := []int{fullWriteSize, fullWriteSize, 12345}; !slices.Equal(w.sizes, want) {
		t.Fatalf("write sizes %v, want %v", w.sizes, want)
	}
}

// TestCopyInFullWritesKeepsTheSidesErrorsApart: a source's error (a
// broken connection) comes back as the read error, after the bytes
// before it were written; a write's error as the write error.
func TestCopyInFullWritesKeepsTheSidesErrorsApart(t *testing.T) {
	broken := errors.New("connection reset")
	var w writeSizes
	src := io.MultiReader(bytes.NewReader(make([]byte, 100)), iotest.ErrReader(broken))
	n, rerr, werr := copyInFullWrites(&w, src)
	if n != 100 || rerr != broken || werr != nil {
		t.Fatalf("broken source: copyInFullWrites = %d, %v, %v; want 100, %v, nil", n, rerr, werr, broken)
	}

	full := errors.New("no space left on device")
	w = writeSizes{fail: full}
	n, rerr, werr = copyInFullWrites(&w, bytes.NewReader(make([]byte, 3*fullWriteSize)))
	if n != 0 || rerr != nil || werr != full {
		t.Fatalf("failing writer: copyInFullWrites = %d, %v, %v; want 0, nil, %v", n, rerr, werr, full)
	}
}
