package integration

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// probeEnv names the directory of a sub-run of
// TestTimedOutRunLeavesNoOrphan; set, TestTimeoutProbe mounts there and
// waits for go test's -timeout.
const probeEnv = "NSFS_INTEGRATION_PROBE"

// probeTimeout is the sub-run's -timeout: time enough to mount twice on a
// loaded machine.
const probeTimeout = 20 * time.Second

// A run that go test's -timeout ends (it panics, and no cleanup runs)
// leaves no daemon and no mount: neither the daemon of startNsfs, whose
// mount is busy, nor one a shell started in the background in a private
// mount namespace (as TestMountDefaultRoot does), nor that namespace.
func TestTimedOutRunLeavesNoOrphan(t *testing.T) {
	t.Parallel()
	requireMount(t)
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("unshare is not installed (util-linux)")
	}
	base := t.TempDir()
	// The sub-run's daemons are exactly the processes of this binary.
	bin := filepath.Join(base, "nsfs")
	copyFile(t, nsfsBin, bin)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), probeTimeout+toolTimeout)
	defer cancel()
	cmd := command(ctx, self, "-test.run=^TestTimeoutProbe$", "-test.v", "-test.timeout="+probeTimeout.String())
	cmd.Env = append(os.Environ(), probeEnv+"="+base, binEnv+"="+bin)
	out, _ := combinedOutput(t, cmd)
	if !strings.Contains(string(out), "panic: test timed out after") {
		t.Fatalf("the sub-run did not time out: exit %d\n%s", cmd.ProcessState.ExitCode(), out)
	}
	if _, err := os.Stat(filepath.Join(base, "ready")); err != nil {
		t.Fatalf("the sub-run timed out before its daemons served (%v); raise probeTimeout?\n%s", err, out)
	}
	mntns, err := os.ReadFile(filepath.Join(base, "mntns"))
	if err != nil || !strings.HasPrefix(string(mntns), "mnt:[") {
		t.Fatalf("the private mount namespace's name: %q, %v", mntns, err)
	}

	// The reaper acts once the sub-run's process is gone; a SIGKILLed
	// process takes a moment to go.
	var left []string
	for deadline := time.Now().Add(exitTimeout); ; time.Sleep(20 * time.Millisecond) {
		left = leftoversOf(t, bin, strings.TrimSpace(string(mntns)), base)
		if len(left) == 0 || time.Now().After(deadline) {
			break
		}
	}
	if len(left) > 0 {
		t.Errorf("%v after the sub-run timed out, these remain:\n%s\nthe sub-run:\n%s", exitTimeout, strings.Join(left, "\n"), out)
		// Leave no orphan of our own.
		for _, m := range mountTable(t) {
			if strings.HasPrefix(m.Mountpoint, base+"/") {
				_, _ = runWithin(t, toolTimeout, "umount", "-l", m.Mountpoint)
			}
		}
	}
}

// leftoversOf lists the processes running bin or living in the mount
// namespace mntns, and the mounts below base.
func leftoversOf(t *testing.T, bin, mntns, base string) []string {
	t.Helper()
	var left []string
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
		ns, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", pid))
		if exe == bin || ns == mntns {
			left = append(left, fmt.Sprintf("process %d (%s, %s)", pid, exe, ns))
		}
	}
	for _, m := range mountTable(t) {
		if strings.HasPrefix(m.Mountpoint, base+"/") {
			left = append(left, fmt.Sprintf("mount %s (%s)", m.Mountpoint, m.FSType))
		}
	}
	return left
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	src, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestTimeoutProbe is the sub-run of TestTimedOutRunLeavesNoOrphan (it
// skips otherwise): it mounts in the probe's directory, keeps the mount
// busy, starts a daemon in a private mount namespace, says "ready", and
// waits for go test's -timeout.
func TestTimeoutProbe(t *testing.T) {
	dir := os.Getenv(probeEnv)
	if dir == "" {
		t.Skip("run by TestTimedOutRunLeavesNoOrphan")
	}
	mnt := filepath.Join(dir, "mnt")
	nsMnt := filepath.Join(dir, "nsmnt")
	for _, p := range []string{mnt, nsMnt} {
		if err := os.Mkdir(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	d := startNsfs(t, withStore(filepath.Join(dir, "root"), mnt))
	busy, err := os.Open(d.path("ns")) // a graceful unmount would be refused
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()

	script := dropCopiedNsfsMounts + fmt.Sprintf(`readlink /proc/self/ns/mnt >%[1]s/mntns
%[2]s mount --root %[1]s/nsroot %[3]s 2>%[1]s/nsdaemon.log &
until ls %[3]s/ns >/dev/null 2>&1; do sleep 0.01; done
echo ready >%[1]s/nsready
wait`, dir, nsfsBin, nsMnt)
	startBackground(t, childCommand("unshare", "--mount", "--propagation", "private", "sh", "-c", script))
	for deadline := time.Now().Add(readyTimeout); ; time.Sleep(10 * time.Millisecond) {
		if _, err := os.Stat(filepath.Join(dir, "nsready")); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the daemon in the private mount namespace does not serve after %v", readyTimeout)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "ready"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Log("mounted; waiting for the -timeout panic")
	<-t.Context().Done() // never: the panic ends the process first
}
