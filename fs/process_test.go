package fs

import (
	"context"
	"os"
	"os/exec"
	"strconv"
	"testing"

	"github.com/hanwen/go-fuse/v2/fuse"
)

func callerContext(tid int) context.Context {
	return fuse.NewContext(context.Background(), &fuse.Caller{Pid: uint32(tid)})
}

// A close commits only when it comes from the process that opened: from
// the opening thread (no /proc read), or another thread of that process;
// not from another process (a child that inherited the descriptor).
func TestClosedByOther(t *testing.T) {
	self := os.Getpid()
	// Another thread of this process: the Go runtime always has several.
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	sibling := 0
	for _, task := range tasks {
		if tid, _ := strconv.Atoi(task.Name()); tid != self && tid != 0 {
			sibling = tid
			break
		}
	}
	if sibling == 0 {
		t.Fatal("no second thread in /proc/self/task")
	}
	child := exec.Command("sleep", "60")
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = child.Process.Kill(); _ = child.Wait() })

	owner := processOf(callerContext(sibling))
	if owner.tid != uint32(sibling) || owner.tgid != self {
		t.Fatalf("processOf(thread %d) = %+v, want tid %d of process %d", sibling, owner, sibling, self)
	}
	for what, c := range map[string]struct {
		ctx   context.Context
		owner process
		want  bool
	}{
		"the opening thread":                 {callerContext(sibling), owner, false},
		"another thread of the same process": {callerContext(self), owner, false},
		"another process":                    {callerContext(child.Process.Pid), owner, true},
		"no caller":                          {context.Background(), owner, false},
		"an unknown opener":                  {callerContext(child.Process.Pid), process{}, false},
	} {
		if got := closedByOther(c.ctx, c.owner); got != c.want {
			t.Errorf("close from %s: closedByOther = %v, want %v", what, got, c.want)
		}
	}
}

// BenchmarkClosedByOwner is the usual close: by the thread that opened.
func BenchmarkClosedByOwner(b *testing.B) {
	ctx := callerContext(os.Getpid())
	owner := processOf(ctx)
	for b.Loop() {
		if closedByOther(ctx, owner) {
			b.Fatal("closed by other")
		}
	}
}

// BenchmarkClosedByOwnerThread is a close by another thread of the
// opener: /proc is read, as it was on every close.
func BenchmarkClosedByOwnerThread(b *testing.B) {
	owner := processOf(callerContext(os.Getpid()))
	owner.tid++ // any other thread: the answer comes from /proc
	ctx := callerContext(os.Getpid())
	for b.Loop() {
		if closedByOther(ctx, owner) {
			b.Fatal("closed by other")
		}
	}
}
