package integration

import (
	"os"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// Bytes that can no longer become a manifest fail the write that sent
// them, so a shell's redirection reports it (it ignores the close), and
// the daemon's log names the image and the reason; O_APPEND on an image
// fails at open.
func TestImageWriteErrorsReachTheShell(t *testing.T) {
	t.Parallel()
	d := startNsfs(t)
	m := d.mnt
	img := newImage(121, "amd64", 300)
	d.putImage(t, "default", "app:v1", img)
	good := img.manifest.hex() + "  " + imagePath("default", "app:v1") + "\n"

	before := d.state(t)
	for _, c := range []struct{ script, want string }{
		{"echo junk > ns/default/images/new:v1", "Invalid argument"},
		{"echo junk > ns/default/images/app:v1", "Invalid argument"},
		{"printf '[]' > ns/default/images/app:v1", "Invalid argument"},
		{"echo x >> ns/default/images/app:v1", "Invalid argument"},
		{"echo '{}' >> ns/default/images/new:v2", "Invalid argument"},
	} {
		// bash prints the errno; dash's builtins say "I/O error" for any.
		mustFail(t, m, c.want, "bash", "-c", c.script)
		if r := sh(t, m, c.script); r.code == 0 {
			t.Errorf("want a failure, got %s", r)
		}
		d.assertUnchanged(t, c.script, before)
	}
	assertOutput(t, "sha256sum of the image", mustRun(t, m, "sha256sum", imagePath("default", "app:v1")), good)
	mustFail(t, m, "No such file or directory", "stat", imagePath("default", "new:v1"))
	mustFail(t, m, "No such file or directory", "stat", imagePath("default", "new:v2"))
	d.waitForLog(t, `write ns/default/images/new:v1: the bytes written can begin no manifest or index: not valid manifest JSON: invalid character 'j': a manifest or index is a JSON object at byte 0`)
	d.waitForLog(t, `open ns/default/images/app:v1: image "app:v1" in namespace "default": a manifest is written whole, never appended to (O_APPEND)`)
	d.waitForLog(t, `create ns/default/images/new:v2: image "new:v2" in namespace "default": a manifest is written whole`)

	// From a program: the write that breaks the JSON is EINVAL, with the
	// bytes before it accepted; the close says so again; nothing is kept.
	fd, err := unix.Open(d.path(imagePath("default", "app:v1")), unix.O_WRONLY|unix.O_TRUNC|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := unix.Write(fd, []byte(`{"schemaVersion":2,`)); err != nil {
		t.Errorf("write of a manifest's beginning: %v", err)
	}
	_, err = unix.Write(fd, []byte(`]`))
	assertErrno(t, "write of a ']' in an object", err, syscall.EINVAL)
	_, err = unix.Write(fd, []byte(`"config":{}}`))
	assertErrno(t, "a write after the refused one", err, syscall.EINVAL)
	assertErrno(t, "fsync after a refused write", unix.Fsync(fd), syscall.EINVAL)
	assertErrno(t, "close after a refused write", unix.Close(fd), syscall.EINVAL)
	d.assertUnchanged(t, "a program writing bad JSON", before)
	d.waitForLog(t, `invalid character ']' looking for beginning of object key string at byte 19`)

	_, err = os.OpenFile(d.path(imagePath("default", "app:v1")), os.O_WRONLY|os.O_APPEND, 0)
	assertErrno(t, "open O_APPEND of an image", err, syscall.EINVAL)
	_, err = os.OpenFile(d.path(imagePath("default", "app:v3")), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	assertErrno(t, "create O_APPEND of an image", err, syscall.EINVAL)
	d.assertUnchanged(t, "opens with O_APPEND", before)

	// What can only be judged whole still fails at close, and the log
	// line names the image and the reason.
	half := img.manifest.data[:len(img.manifest.data)/2]
	mustFail(t, m, "Invalid argument", "cp", writeTemp(t, "half.json", half), imagePath("default", "app:v1"))
	d.assertUnchanged(t, "half a manifest", before)
	d.waitForLog(t, `commit ns/default/images/app:v1 (close): image "app:v1": not valid manifest JSON`)

	// Writes out of order are judged at the commit only: the second half
	// first, then the first, is the manifest.
	fd, err = unix.Open(d.path(imagePath("default", "app:v2")), unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	data, mid := img.manifest.data, len(img.manifest.data)/2
	if _, err := unix.Pwrite(fd, data[mid:], int64(mid)); err != nil {
		t.Errorf("pwrite of the second half: %v", err)
	}
	if _, err := unix.Pwrite(fd, data[:mid], 0); err != nil {
		t.Errorf("pwrite of the first half: %v", err)
	}
	if err := unix.Close(fd); err != nil {
		t.Errorf("close of a manifest written out of order: %v", err)
	}
	assertOutput(t, "sha256sum of the image written out of order", mustRun(t, m, "sha256sum", imagePath("default", "app:v2")),
		img.manifest.hex()+"  "+imagePath("default", "app:v2")+"\n")
	// And a good manifest through the shell, in pieces, still works.
	mustSh(t, m, "cat "+writeTemp(t, "m.json", img.manifest.data)+" > ns/default/images/app:v1")
	assertOutput(t, "sha256sum after a good rewrite", mustRun(t, m, "sha256sum", imagePath("default", "app:v1")), good)
}
