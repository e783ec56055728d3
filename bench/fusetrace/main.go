// Command fusetrace counts and times the FUSE requests a command makes on
// one mount, through the kernel's own tracepoints (fuse:fuse_request_send
// and fuse:fuse_request_end, Linux 6.15 and later): no debug build of the
// daemon, nothing added to its hot path. It needs root and tracefs
// (/sys/kernel/tracing; it mounts it if absent), and uses a trace
// instance of its own, so that other tracers on the machine are left
// alone.
//
//	$ bin/fusetrace -mnt /tmp/m -daemon $(pidof nsfs) -- sh -c 'cd /tmp/m/ns/default/rootfs/app && find . | wc -l'
//	opcode        count   round trip µs   wake µs  daemon µs  reply µs
//	OPENDIR        3178       27.1           14.0       6.2       2.1
//	...
//
// For each opcode: how many requests, and their mean time from the
// kernel queueing the request to the reply being taken (round trip),
// split, when -daemon names the daemon's process, by what its threads
// did: from the queueing until the daemon's read of /dev/fuse returned
// (wake), from there until it wrote the reply (daemon: go-fuse and the
// filesystem's handler), and from the reply's write until the kernel
// ended the request (reply). It also counts how often the daemon's
// threads were woken and scheduled in, per request.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

const tracefs = "/sys/kernel/tracing"

func main() {
	log.SetFlags(0)
	log.SetPrefix("fusetrace: ")
	mnt := flag.String("mnt", "", "a `DIR` on the FUSE mount whose requests are counted")
	daemon := flag.Int("daemon", 0, "the daemon's `PID`: split each request's time by what its threads did")
	bufKB := flag.Int("buf", 256<<10, "trace buffer per CPU, in `KiB`")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: fusetrace -mnt DIR [-daemon PID] -- COMMAND [ARG...]")
		flag.PrintDefaults()
	}
	flag.Parse()
	if *mnt == "" || flag.NArg() == 0 {
		flag.Usage()
		os.Exit(2)
	}
	var st unix.Stat_t
	if err := unix.Stat(*mnt, &st); err != nil {
		log.Fatal(err)
	}
	// The kernel's dev_t (MKDEV), as the tracepoint prints it.
	conn := uint64(unix.Major(st.Dev))<<20 | uint64(unix.Minor(st.Dev))

	if _, err := os.Stat(filepath.Join(tracefs, "instances")); err != nil {
		if err := unix.Mount("nodev", tracefs, "tracefs", 0, ""); err != nil {
			log.Fatalf("mount tracefs: %v", err)
		}
	}
	inst := filepath.Join(tracefs, "instances", fmt.Sprintf("fusetrace-%d", os.Getpid()))
	if err := os.Mkdir(inst, 0o755); err != nil {
		log.Fatal(err)
	}
	defer os.Remove(inst)
	write := func(rel, v string) {
		if err := os.WriteFile(filepath.Join(inst, rel), []byte(v), 0); err != nil {
			log.Fatalf("%s: %v", rel, err)
		}
	}
	write("tracing_on", "0")
	write("buffer_size_kb", strconv.Itoa(*bufKB))
	write("trace_clock", "mono")
	fuseFilter := fmt.Sprintf("connection == %d", conn)
	for _, ev := range []string{"fuse/fuse_request_send", "fuse/fuse_request_end"} {
		write("events/"+ev+"/filter", fuseFilter)
		write("events/"+ev+"/enable", "1")
	}
	var tids map[int]bool
	if *daemon != 0 {
		tids = threadsOf(*daemon)
		var byPid, byWakee []string
		for t := range tids {
			byPid = append(byPid, fmt.Sprintf("common_pid == %d", t))
			byWakee = append(byWakee, fmt.Sprintf("pid == %d", t))
		}
		pidFilter := strings.Join(byPid, " || ")
		for _, ev := range []string{"syscalls/sys_exit_read", "syscalls/sys_enter_writev"} {
			write("events/"+ev+"/filter", pidFilter)
			write("events/"+ev+"/enable", "1")
		}
		write("events/sched/sched_wakeup/filter", strings.Join(byWakee, " || "))
		write("events/sched/sched_wakeup/enable", "1")
		// Scheduled in: sched_switch's next_pid.
		var byNext []string
		for t := range tids {
			byNext = append(byNext, fmt.Sprintf("next_pid == %d", t))
		}
		write("events/sched/sched_switch/filter", strings.Join(byNext, " || "))
		write("events/sched/sched_switch/enable", "1")
	}

	write("trace", "")
	write("tracing_on", "1")
	cmd := exec.Command(flag.Arg(0), flag.Args()[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	start := time.Now()
	runErr := cmd.Run()
	wall := time.Since(start)
	// Async requests (RELEASE) may still be on their way.
	time.Sleep(50 * time.Millisecond)
	write("tracing_on", "0")
	if *daemon != 0 {
		if now := threadsOf(*daemon); len(now) != len(tids) {
			log.Printf("the daemon started %d threads during the run; their requests are not split", len(now)-len(tids))
		}
	}

	rep, err := parse(filepath.Join(inst, "trace"), tids)
	for _, ev := range []string{"fuse/fuse_request_send", "fuse/fuse_request_end", "syscalls/sys_exit_read", "syscalls/sys_enter_writev", "sched/sched_wakeup", "sched/sched_switch"} {
		os.WriteFile(filepath.Join(inst, "events", ev, "enable"), []byte("0"), 0)
		os.WriteFile(filepath.Join(inst, "events", ev, "filter"), []byte("0"), 0)
	}
	if err != nil {
		log.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(inst, "per_cpu", "cpu0", "stats")); err == nil && strings.Contains(string(b), "overrun: ") && !strings.Contains(string(b), "overrun: 0\n") {
		log.Printf("the trace buffer overran: raise -buf")
	}
	rep.print(os.Stdout, wall, *daemon != 0)
	if runErr != nil {
		log.Fatalf("%s: %v", flag.Arg(0), runErr)
	}
}

func threadsOf(pid int) map[int]bool {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		log.Fatalf("daemon %d: %v", pid, err)
	}
	tids := map[int]bool{}
	for _, e := range ents {
		if t, err := strconv.Atoi(e.Name()); err == nil {
			tids[t] = true
		}
	}
	return tids
}

type request struct {
	op        string
	sent      float64 // seconds
	read      float64 // the daemon's read of it returned (0: unknown)
	replied   float64 // the daemon entered writev (0: unknown)
	ended     float64
	requester int
}

type opStats struct {
	n                                int
	rtt, wake, daemon, reply         float64 // sums, seconds
	split                            int     // requests with wake, daemon and reply known
	rtts                             []float64
	byDaemonThread, byOtherRequester int
}

type report struct {
	ops                map[string]*opStats
	wakeups, switchIns int
	requests           int
	unmatched          int
}

// A line of the trace: "  comm-123  [001] d..1.  1234.567890: event: fields".
// Syscall events print as "sys_read -> 0x30" and "sys_writev(fd: …)".
var lineRE = regexp.MustCompile(`^\s*(.*)-(\d+)\s+\[\d+\]\s+\S+\s+(\d+\.\d+): (\w+)(?::| ->|\() ?(.*)$`)

func parse(path string, tids map[int]bool) (*report, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	rep := &report{ops: map[string]*opStats{}}
	pending := map[uint64]*request{}
	lastRead := map[int]float64{}   // by daemon thread: when its last read returned
	lastWritev := map[int]float64{} // and when it last entered writev
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		m := lineRE.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		pid, _ := strconv.Atoi(m[2])
		ts, _ := strconv.ParseFloat(m[3], 64)
		fields := strings.Fields(m[5])
		switch m[4] {
		case "fuse_request_send":
			// connection C req U opcode N (NAME) len L
			u, _ := strconv.ParseUint(field(fields, "req"), 10, 64)
			op := strings.Trim(field(fields, "opcode", 1), "()")
			op = strings.TrimPrefix(op, "FUSE_")
			pending[u] = &request{op: op, sent: ts, requester: pid}
		case "fuse_request_end":
			u, _ := strconv.ParseUint(field(fields, "req"), 10, 64)
			r := pending[u]
			if r == nil {
				rep.unmatched++
				continue
			}
			delete(pending, u)
			r.ended = ts
			if tids[pid] {
				if rd := lastRead[pid]; rd >= r.sent {
					r.read = rd
				}
				if wv := lastWritev[pid]; wv >= r.read && r.read != 0 {
					r.replied = wv
				}
			}
			rep.add(r, tids[pid])
		case "sys_read":
			// "0x0" is the return value; a request is at least 40 bytes.
			if n, err := strconv.ParseInt(strings.TrimPrefix(fields[len(fields)-1], "0x"), 16, 64); err == nil && n >= 40 {
				lastRead[pid] = ts
			}
		case "sys_writev":
			lastWritev[pid] = ts
		case "sched_wakeup":
			rep.wakeups++
		case "sched_switch":
			rep.switchIns++
		}
	}
	return rep, sc.Err()
}

// field returns the word after key in fields (skip more words after it).
func field(fields []string, key string, skip ...int) string {
	for i, f := range fields {
		if f == key {
			j := i + 1
			if len(skip) > 0 {
				j += skip[0]
			}
			if j < len(fields) {
				return fields[j]
			}
		}
	}
	return ""
}

func (rep *report) add(r *request, byDaemon bool) {
	s := rep.ops[r.op]
	if s == nil {
		s = &opStats{}
		rep.ops[r.op] = s
	}
	rep.requests++
	s.n++
	s.rtt += r.ended - r.sent
	s.rtts = append(s.rtts, r.ended-r.sent)
	if r.read != 0 && r.replied != 0 {
		s.split++
		s.wake += r.read - r.sent
		s.daemon += r.replied - r.read
		s.reply += r.ended - r.replied
	}
}

func (rep *report) print(out *os.File, wall time.Duration, split bool) {
	names := make([]string, 0, len(rep.ops))
	for k := range rep.ops {
		names = append(names, k)
	}
	sort.Slice(names, func(i, j int) bool { return rep.ops[names[i]].n > rep.ops[names[j]].n })
	us := func(sum float64, n int) string {
		if n == 0 {
			return "—"
		}
		return fmt.Sprintf("%.1f", sum/float64(n)*1e6)
	}
	fmt.Fprintf(out, "wall %.1f ms, %d requests\n", float64(wall)/1e6, rep.requests)
	fmt.Fprintf(out, "%-12s %8s %10s %10s %10s %10s %10s %12s\n", "opcode", "count", "rtt µs", "median", "wake µs", "daemon µs", "reply µs", "sum rtt ms")
	for _, k := range names {
		s := rep.ops[k]
		sort.Float64s(s.rtts)
		med := s.rtts[len(s.rtts)/2]
		fmt.Fprintf(out, "%-12s %8d %10s %10.1f %10s %10s %10s %12.1f\n", k, s.n, us(s.rtt, s.n), med*1e6,
			us(s.wake, s.split), us(s.daemon, s.split), us(s.reply, s.split), s.rtt*1e3)
	}
	if split && rep.requests > 0 {
		fmt.Fprintf(out, "daemon threads: %d wakeups, %d times scheduled in (%.2f and %.2f per request)\n",
			rep.wakeups, rep.switchIns, float64(rep.wakeups)/float64(rep.requests), float64(rep.switchIns)/float64(rep.requests))
	}
	if rep.unmatched > 0 {
		fmt.Fprintf(out, "%d replies to requests sent before the trace started\n", rep.unmatched)
	}
}
