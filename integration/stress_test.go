package integration

// stress-ng's directory, dentry and xattr stressors against the mount.
//
// Where they can run: stress-ng makes its own directory in --temp-path and
// works inside it with names of its own — mkdir/rmdir of arbitrary names
// (--dir), creat/unlink of many files (--dentry), and thousands of xattrs
// on one file, by descriptor and by path, with XATTR_CREATE, XATTR_REPLACE,
// size probes and refusals it expects (--xattr). In nsfs only images/ (and
// its prefix directories) takes directories and files of any valid name:
//
//   - ns/ takes stress-ng's directory (a valid namespace name), but nothing
//     can be made inside a namespace directory (EPERM, by design);
//   - blobs/sha256/ takes only files named by a sha256 digest, and no
//     directories (EPERM), so stress-ng cannot even make its directory.
//
// In images/ the files stress-ng creates are empty, which is no manifest:
// they exist by name while open (the dentry and xattr stressors work on
// them), and each close is refused with EINVAL, which stress-ng does not
// check. So the run exercises lookups, mkdir/rmdir, creation and removal
// races and the xattr codec, not image commits.

import (
	"context"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestStressNgInImages(t *testing.T) {
	if _, err := exec.LookPath("stress-ng"); err != nil {
		if skipReason == "" {
			t.Fatalf("stress-ng is not installed (apt-get install stress-ng)")
		}
		t.Skip(err)
	}
	t.Parallel()
	d := startNsfs(t)
	img := newImage(9001, "amd64", 300)
	d.putImage(t, "default", "before:stress", img)
	before := d.state(t)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := command(ctx, "stress-ng", "--dir", "2", "--dentry", "2", "--xattr", "2",
		"--timeout", "10s", "--temp-path", d.path("ns/default/images"), "--metrics-brief")
	out, err := combinedOutput(t, cmd)
	if ctx.Err() != nil {
		t.Fatalf("stress-ng still running after 60 s (a hang?):\n%s", out)
	}
	if err != nil {
		t.Errorf("stress-ng exited with %v:\n%s", err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, "fail") || strings.Contains(line, "error") {
			t.Errorf("stress-ng reports: %s", line)
		}
	}
	// Each stressor must have done work: a stressor that skips itself
	// (say, xattrs found unsupported) still exits 0.
	for _, stressor := range []string{"dir", "dentry", "xattr"} {
		m := regexp.MustCompile(`\] ` + stressor + `\s+(\d+)\s`).FindSubmatch(out)
		if m == nil {
			t.Errorf("stress-ng's metrics have no line for %s:\n%s", stressor, out)
		} else if n, _ := strconv.Atoi(string(m[1])); n == 0 {
			t.Errorf("stress-ng's %s stressor did no operation:\n%s", stressor, out)
		}
	}
	if strings.Contains(d.logs.String(), "panic") {
		t.Fatalf("the daemon panicked:\n%s", d.logs)
	}
	// stress-ng removes what it made: the store is as it was.
	d.assertUnchanged(t, "stress-ng in images/", before)
	if problems := checkStoreInvariants(d.mnt, d.root); len(problems) > 0 {
		t.Errorf("after stress-ng:\n%s", strings.Join(problems, "\n"))
	}
	t.Logf("stress-ng:\n%s", out)
}
