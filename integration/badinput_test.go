package integration

// Bad input beyond what images_test.go and labels_test.go refuse: inputs
// built to break parsers and limits — a 100 MB "manifest", a 10,000-deep
// ref, NUL bytes in names, digests of another algorithm, nested JSON,
// sizes that lie. Each must get its errno and leave the store unchanged,
// and the daemon's memory must stay bounded.

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// TestBadInputManifests: manifests that are JSON but lie or nest, each
// refused with EINVAL at close, the store unchanged.
func TestBadInputManifests(t *testing.T) {
	t.Parallel()
	d := startNsfs(t)
	m := d.mnt
	img := newImage(8001, "amd64", 700, 900)
	d.putImage(t, "default", "base", img)
	var good map[string]any
	if err := json.Unmarshal(img.manifest.data, &good); err != nil {
		t.Fatal(err)
	}
	sha512Hex := strings.Repeat("ab", 64)
	variant := func(change func(m map[string]any)) []byte {
		var v map[string]any
		if err := json.Unmarshal(img.manifest.data, &v); err != nil {
			t.Fatal(err)
		}
		change(v)
		return mustJSON(v)
	}
	config := func(v map[string]any) map[string]any { return v["config"].(map[string]any) }
	layer := func(v map[string]any, i int) map[string]any { return v["layers"].([]any)[i].(map[string]any) }
	lyingChild := img.manifest.descriptor()
	lyingChild.Size++
	cases := []struct {
		name string
		data []byte
	}{
		{"a config digest of another algorithm (sha512)", variant(func(v map[string]any) { config(v)["digest"] = "sha512:" + sha512Hex })},
		{"a layer digest of an unknown algorithm", variant(func(v map[string]any) { layer(v, 1)["digest"] = "md5:" + strings.Repeat("a", 32) })},
		{"a digest without an algorithm", variant(func(v map[string]any) { config(v)["digest"] = img.config.hex() })},
		{"a config size that lies (one byte more)", variant(func(v map[string]any) { config(v)["size"] = len(img.config.data) + 1 })},
		{"a layer size that lies (huge)", variant(func(v map[string]any) { layer(v, 0)["size"] = int64(1) << 62 })},
		{"a negative layer size", variant(func(v map[string]any) { layer(v, 0)["size"] = -1 })},
		{"a fractional size", variant(func(v map[string]any) { config(v)["size"] = 700.5 })},
		{"a size as a string", variant(func(v map[string]any) { config(v)["size"] = "700" })},
		{"a NUL in the media type", variant(func(v map[string]any) { v["mediaType"] = mediaTypeOCIManifest + "\x00" })},
		{"no media type on the config", variant(func(v map[string]any) { delete(config(v), "mediaType") })},
		{"layers that are an object", variant(func(v map[string]any) { v["layers"] = map[string]any{} })},
		{"an index whose child's size lies", mustJSON(index{SchemaVersion: 2, MediaType: mediaTypeOCIIndex, Manifests: []descriptor{lyingChild}})},
		{"config nested 100,000 arrays deep", []byte(`{"schemaVersion":2,"config":` + strings.Repeat("[", 100000) + strings.Repeat("]", 100000) + `}`)},
		{"two JSON objects", append(append([]byte{}, img.manifest.data...), img.manifest.data...)},
		{"a UTF-16 manifest", utf16(img.manifest.data)},
	}
	for _, c := range cases {
		before := d.state(t)
		p := d.path(imagePath("default", "bad"))
		err := writeFileSyscalls(p, c.data, 0, false, false)
		assertErrno(t, c.name, err, syscall.EINVAL)
		d.assertUnchanged(t, c.name, before)
		// The same through cp, into an existing image: it keeps its bytes.
		mustFail(t, m, "Invalid argument", "cp", writeTemp(t, "bad.json", c.data), imagePath("default", "base"))
		d.assertUnchanged(t, c.name+" over an existing image", before)
	}
	assertOutput(t, "sha256sum of the image bad input tried to replace", mustRun(t, m, "sha256sum", imagePath("default", "base")),
		img.manifest.hex()+"  "+imagePath("default", "base")+"\n")
}

func utf16(b []byte) []byte {
	out := []byte{0xff, 0xfe}
	for _, c := range b {
		out = append(out, c, 0)
	}
	return out
}

// TestBadInputDigestsOfAnotherAlgorithm: the store is sha256 only; the
// ways a user can ask for another algorithm are refused, and a file named
// by another algorithm's digest is only ever a temporary file.
func TestBadInputDigestsOfAnotherAlgorithm(t *testing.T) {
	t.Parallel()
	d := startNsfs(t)
	m := d.mnt
	data := randomBytes(8002, 500)
	before := d.state(t)
	mustFail(t, m, "Operation not permitted", "mkdir", "ns/default/blobs/sha512")
	sha512Name := strings.Repeat("cd", 64) // as long as a sha512 in hex
	for _, name := range []string{sha512Name, "sha512:" + sha512Name[:64], strings.ToUpper(sha256Hex(data))} {
		mustRun(t, m, "cp", writeTemp(t, "b", data), blobPath("default", name))
		mustFail(t, m, "Bad message", "mv", blobPath("default", name), blobPath("default", sha512Name[:64]))
		mustRun(t, m, "rm", blobPath("default", name))
	}
	d.assertUnchanged(t, "blobs named by another algorithm", before)
}

// TestBadInputHundredMegabyteManifest: a 100 MB "manifest" is refused
// with EFBIG as soon as it passes 4 MiB, is never held in memory whole, and
// changes nothing.
func TestBadInputHundredMegabyteManifest(t *testing.T) {
	t.Parallel()
	d := startNsfs(t)
	img := newImage(8003, "amd64", 100)
	d.putImage(t, "default", "app", img)
	before := d.state(t)
	baseline := d.vmHWM(t)

	const total, chunk = 100 << 20, 1 << 20
	buf := make([]byte, chunk)
	for i := range buf {
		buf[i] = '{'
	}
	for _, ref := range []string{"huge", "app"} { // a new image, and one that exists
		fd, err := unix.Open(d.path(imagePath("default", ref)), unix.O_CREAT|unix.O_WRONLY|unix.O_TRUNC|unix.O_CLOEXEC, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		written, writeErr := 0, error(nil)
		for written < total {
			n, err := unix.Write(fd, buf)
			if err != nil {
				writeErr = err
				break
			}
			written += n
		}
		assertErrno(t, fmt.Sprintf("write of a 100 MB manifest to %s (after %d bytes)", ref, written), writeErr, syscall.EFBIG)
		if written > 4<<20 {
			t.Errorf("a manifest grew to %d bytes before EFBIG, want at most 4 MiB", written)
		}
		// close must not commit the first 4 MiB that were buffered.
		assertErrno(t, "close after EFBIG", unix.Close(fd), syscall.EFBIG)
		d.assertUnchanged(t, "a 100 MB manifest written to "+ref, before)
	}
	// cp of a 100 MB file, as a user would.
	big := filepath.Join(t.TempDir(), "big.json")
	f, err := os.Create(big)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(total); err != nil {
		t.Fatal(err)
	}
	f.Close()
	mustFail(t, d.mnt, "File too large", "cp", big, imagePath("default", "huge"))
	d.assertUnchanged(t, "cp of a 100 MB file as an image", before)
	// Bounded: far below the 3 × 100 MB sent (the 4 MiB buffer, the
	// kernel's write requests, and Go's garbage not yet collected).
	grown := d.vmHWM(t) - baseline
	t.Logf("the daemon's peak resident memory grew by %d MiB while refusing three 100 MB manifests", grown>>20)
	if grown > 64<<20 {
		t.Errorf("the daemon's peak memory grew by %d MiB while refusing 100 MB manifests, want it bounded (< 64 MiB)", grown>>20)
	}
}

// TestBadInputTenThousandDeepRef: a ref 10,000 components deep cannot be
// made, neither as one path (the kernel's PATH_MAX) nor one directory at a
// time (the daemon's 4096-byte limit on a ref); what was made up to the
// limit goes with rm -r, and the store is as it was.
func TestBadInputTenThousandDeepRef(t *testing.T) {
	t.Parallel()
	d := startNsfs(t)
	img := newImage(8004, "amd64", 100)
	d.putImage(t, "default", "app", img)
	before := d.state(t)
	deep := strings.Repeat("a/", 9999) + "a"
	err := os.WriteFile(d.path(imagePath("default", deep)), img.manifest.data, 0o644)
	assertErrno(t, "create of a 10,000-deep ref by path", err, syscall.ENAMETOOLONG)
	err = unix.Mkdir(d.path(imagePath("default", deep)), 0o755)
	assertErrno(t, "mkdir of a 10,000-deep ref by path", err, syscall.ENAMETOOLONG)

	// One level at a time, as a program walking with *at calls would:
	// 15-byte components, so that 256 levels make a 4095-byte ref.
	const comp = "aaaaaaaaaaaaaaa"
	dirfd, err := unix.Open(d.path("ns/default/images"), unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	depth, refLen := 0, -1
	var mkdirErr error
	for depth < 10000 {
		if mkdirErr = unix.Mkdirat(dirfd, comp, 0o755); mkdirErr != nil {
			break
		}
		next, err := unix.Openat(dirfd, comp, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatalf("open of level %d: %v", depth+1, err)
		}
		unix.Close(dirfd)
		dirfd = next
		depth++
		refLen += len(comp) + 1
	}
	assertErrno(t, fmt.Sprintf("mkdir of level %d (a ref of %d bytes)", depth+1, refLen+len(comp)+1), mkdirErr, syscall.ENAMETOOLONG)
	if depth != 256 {
		t.Errorf("mkdir one level at a time stopped at depth %d, want 256 (refs up to 4096 bytes)", depth)
	}
	fd, err := unix.Openat(dirfd, "x:v1", unix.O_CREAT|unix.O_WRONLY|unix.O_EXCL|unix.O_CLOEXEC, 0o644)
	if err == nil {
		unix.Write(fd, img.manifest.data)
		err = unix.Close(fd)
	}
	assertErrno(t, fmt.Sprintf("create of an image below %d levels (a %d-byte ref)", depth, refLen+5), err, syscall.ENAMETOOLONG)
	unix.Close(dirfd)
	mustRun(t, d.mnt, "rm", "-r", "ns/default/images/"+comp)
	d.assertUnchanged(t, "a 10,000-deep ref", before)
}

// TestBadInputNULInNames: a NUL cannot reach the daemon — the C string
// ends there. Go's syscall wrappers refuse such a name with EINVAL; a raw
// syscall makes the kernel read the name up to the NUL, so the user gets
// the object of the shorter name, as on any filesystem. A label value
// may hold NUL bytes: xattr values are bytes, and they come back as set.
func TestBadInputNULInNames(t *testing.T) {
	t.Parallel()
	d := startNsfs(t)
	img := newImage(8005, "amd64", 100)
	d.putImage(t, "default", "app", img)
	before := d.state(t)

	assertErrno(t, "mkdir of a name with a NUL (Go)", unix.Mkdir(d.path("ns/te\x00st"), 0o755), syscall.EINVAL)
	assertErrno(t, "setxattr of a name with a NUL (Go)", unix.Setxattr(d.path("ns/default"), "user.a\x00b", []byte("v"), 0), syscall.EINVAL)
	_, err := os.Create(d.path(imagePath("default", "ap\x00p")))
	assertErrno(t, "create of a ref with a NUL (Go)", err, syscall.EINVAL)
	d.assertUnchanged(t, "names with NUL through Go's wrappers", before)

	// The raw syscall: the kernel stops at the NUL.
	raw := []byte(d.path("ns/te") + "\x00st\x00")
	_, _, errno := unix.Syscall(unix.SYS_MKDIR, uintptr(unsafe.Pointer(&raw[0])), 0o755, 0)
	if errno != 0 {
		t.Fatalf("raw mkdir of \"te\\0st\": %v", errno)
	}
	assertOutput(t, "ls ns after a raw mkdir of \"te\\0st\"", mustRun(t, d.mnt, "ls", "ns"), lines("default", "te"))
	rawName := []byte("user.a\x00b\x00")
	rawPath := []byte(d.path("ns/te") + "\x00")
	value := []byte("v")
	_, _, errno = unix.Syscall6(unix.SYS_SETXATTR, uintptr(unsafe.Pointer(&rawPath[0])), uintptr(unsafe.Pointer(&rawName[0])),
		uintptr(unsafe.Pointer(&value[0])), uintptr(len(value)), 0, 0)
	if errno != 0 {
		t.Fatalf("raw setxattr of \"user.a\\0b\": %v", errno)
	}
	assertOutput(t, "getfattr after a raw setxattr of \"user.a\\0b\"", mustRun(t, d.mnt, "getfattr", "--absolute-names", "-d", "ns/te"), "# file: ns/te\nuser.a=\"v\"\n\n")

	// NUL bytes inside a value are kept exactly.
	withNUL := []byte("a\x00b\x00")
	if err := unix.Setxattr(d.path("ns/te"), "user.bin", withNUL, 0); err != nil {
		t.Fatalf("setxattr of a value with NUL bytes: %v", err)
	}
	got := make([]byte, 16)
	n, err := unix.Getxattr(d.path("ns/te"), "user.bin", got)
	if err != nil || string(got[:n]) != string(withNUL) {
		t.Errorf("getxattr of a value with NUL bytes = %q, %v; want %q", got[:n], err, withNUL)
	}
	mustRun(t, d.mnt, "rmdir", "ns/te")
	d.assertUnchanged(t, "raw names with NUL, after rmdir of what they made", before)
}

// TestBadInputOversizedManifestIsNotCutToSize: a valid manifest followed
// by 100 MB of whitespace is valid JSON, but over the limit: the write
// fails with EFBIG, and the first 4 MiB (a valid manifest and spaces) must
// not become the image at close.
func TestBadInputOversizedManifestIsNotCutToSize(t *testing.T) {
	t.Parallel()
	d := startNsfs(t)
	img := newImage(8006, "amd64", 100)
	d.putImage(t, "default", "app", img)
	before := d.state(t)
	spaces := make([]byte, 1<<20)
	for i := range spaces {
		spaces[i] = ' '
	}
	for _, ref := range []string{"padded", "app"} {
		fd, err := unix.Open(d.path(imagePath("default", ref)), unix.O_CREAT|unix.O_WRONLY|unix.O_TRUNC|unix.O_CLOEXEC, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		written, writeErr := 0, error(nil)
		if _, err := unix.Write(fd, img.manifest.data); err != nil {
			t.Fatal(err)
		}
		for written < 100<<20 {
			n, err := unix.Write(fd, spaces)
			if err != nil {
				writeErr = err
				break
			}
			written += n
		}
		assertErrno(t, "write of a manifest padded to 100 MB into "+ref, writeErr, syscall.EFBIG)
		closeErr := unix.Close(fd)
		if closeErr == nil {
			t.Errorf("close of %s after a write failed with EFBIG succeeded: the image is now its first 4 MiB", ref)
		}
		d.assertUnchanged(t, "a manifest padded to 100 MB written to "+ref, before)
	}
}
