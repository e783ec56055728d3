package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"math/rand/v2"

	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2"
	"oras.land/oras-go/v2/content/oci"
	"oras.land/oras-go/v2/registry/remote"
)

// The pull rows: a local docker-registry on 127.0.0.1 holds a ~200 MiB
// image of random (incompressible) layers, pushed with oras-go. Each round
// does, in this order:
//
//   - a cold pull: `nsfs -n pullR pull --plain-http -q REF`, the whole CLI
//     process, into a store that holds none of the image's blobs;
//   - five second-namespace pulls: the same into new namespaces, whose
//     blobs the store then holds; the registry's access log says how many
//     blob bytes it sent for them (the target is none);
//   - the floor: oras.Copy of the same image from the registry into a
//     fresh plain OCI directory (content/oci), in this process, on the
//     same disk as the nsfs store;
//
// and then removes the namespaces through the mount (rm -rf), so that
// the next cold pull finds no blobs.

const (
	registryBin   = "/usr/bin/docker-registry"
	pullLayers    = 4
	pullLayerSize = 50 << 20
	pullRounds    = 3
	secondPulls   = 5 // second-namespace pulls per round, each into a new namespace
)

// pullResult is what the pull table shows.
type pullResult struct {
	imageBytes int64
	cold, oras time.Duration // medians
	// CPU time (user+system) of each process during the cold pulls and
	// the oras-go copies, medians: where the time goes, on 2 CPUs.
	coldCPU, orasCPU cpuShare
	second           time.Duration // median
	secondBytes      int64         // blob bytes the registry sent during the second pulls (all rounds)
}

type registry struct {
	addr   string
	cmd    *exec.Cmd
	exited chan struct{}
	mu     sync.Mutex
	log    bytes.Buffer
}

func (r *registry) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.log.Write(p)
}

func (r *registry) logText() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.log.String()
}

func (r *registry) stop() {
	select {
	case <-r.exited:
		return
	default:
	}
	r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.exited:
	case <-time.After(5 * time.Second):
		r.cmd.Process.Kill()
		<-r.exited
	}
}

func startRegistry(dir string) (*registry, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := l.Addr().String()
	l.Close()
	config := fmt.Sprintf(`version: 0.1
log:
  level: info
  formatter: text
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: %s
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: %s
  secret: nsfs-bench
`, filepath.Join(dir, "storage"), addr)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	configPath := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(configPath, []byte(config), 0o600); err != nil {
		return nil, err
	}
	r := &registry{addr: addr, exited: make(chan struct{})}
	r.cmd = exec.Command(registryBin, "serve", configPath)
	r.cmd.Stdout, r.cmd.Stderr = r, r
	r.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := r.cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		r.cmd.Wait()
		close(r.exited)
	}()
	cleanups.push(r.stop)
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(15 * time.Second)
	for {
		select {
		case <-r.exited:
			return nil, fmt.Errorf("docker-registry exited at start:\n%s", r.logText())
		default:
		}
		if resp, err := client.Get("http://" + addr + "/v2/"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return r, nil
			}
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("docker-registry at %s does not answer after 15 s:\n%s", addr, r.logText())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// mark returns a position in the access log after which every request
// answered before the call is logged (the registry logs a request once it
// has answered it).
func (r *registry) mark() (int, error) {
	marker := fmt.Sprintf("nsfs-bench-marker-%d", time.Now().UnixNano())
	resp, err := http.Get("http://" + r.addr + "/v2/?" + marker)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if i := strings.Index(r.logText(), marker); i >= 0 {
			return i, nil
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("the registry's access log does not show %s", marker)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

var blobGET = regexp.MustCompile(`"GET /v2/[^ "]+/blobs/sha256:[0-9a-f]{64} HTTP/[0-9.]+" (\d+) (\d+)`)

// blobBytes sums the bytes of the blob GETs the access log shows between
// two marks.
func (r *registry) blobBytes(from, to int) int64 {
	var n int64
	for _, m := range blobGET.FindAllStringSubmatch(r.logText()[from:to], -1) {
		b, _ := strconv.ParseInt(m[2], 10, 64)
		n += b
	}
	return n
}

// pushImage pushes an image of pullLayers random layers to repo:v1 and
// returns its size (manifest, config and layers).
func pushImage(ctx context.Context, repo *remote.Repository) (int64, error) {
	rng := rand.NewChaCha8([32]byte{7})
	var layers []ocispec.Descriptor
	var total int64
	for i := 0; i < pullLayers; i++ {
		data := make([]byte, pullLayerSize)
		rng.Read(data)
		desc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: digest.FromBytes(data), Size: int64(len(data))}
		if err := repo.Push(ctx, desc, bytes.NewReader(data)); err != nil {
			return 0, fmt.Errorf("push layer %d: %v", i, err)
		}
		layers = append(layers, desc)
		total += desc.Size
	}
	config := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`)
	configDesc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: digest.FromBytes(config), Size: int64(len(config))}
	if err := repo.Push(ctx, configDesc, bytes.NewReader(config)); err != nil {
		return 0, fmt.Errorf("push config: %v", err)
	}
	manifest, err := json.Marshal(ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    configDesc,
		Layers:    layers,
	})
	if err != nil {
		return 0, err
	}
	manifestDesc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromBytes(manifest), Size: int64(len(manifest))}
	if err := repo.PushReference(ctx, manifestDesc, bytes.NewReader(manifest), "v1"); err != nil {
		return 0, fmt.Errorf("push manifest: %v", err)
	}
	return total + configDesc.Size + manifestDesc.Size, nil
}

// measurePulls runs the pull rounds against the nsfs mount nsfs.
func measurePulls(dir string, nsfs *target) (*pullResult, error) {
	reg, err := startRegistry(filepath.Join(dir, "registry"))
	if err != nil {
		return nil, err
	}
	defer reg.stop()
	ctx := context.Background()
	repo, err := remote.NewRepository(reg.addr + "/bench/big")
	if err != nil {
		return nil, err
	}
	repo.PlainHTTP = true
	size, err := pushImage(ctx, repo)
	if err != nil {
		return nil, err
	}
	ref := reg.addr + "/bench/big:v1"
	res := &pullResult{imageBytes: size}
	var cold, second, orasTimes []time.Duration
	var coldCPU, orasCPU []cpuShare
	for round := 0; round < pullRounds; round++ {
		coldNS := fmt.Sprintf("pull%d", round)
		before := sampleCPU(nsfs.daemon.Process.Pid, reg.cmd.Process.Pid)
		d, client, err := runPullCPU(nsfs, coldNS, ref)
		if err != nil {
			return nil, err
		}
		cold = append(cold, d)
		coldCPU = append(coldCPU, sampleCPU(nsfs.daemon.Process.Pid, reg.cmd.Process.Pid).since(before, client))
		namespaces := []string{coldNS}

		from, err := reg.mark()
		if err != nil {
			return nil, err
		}
		for i := 0; i < secondPulls; i++ {
			ns := fmt.Sprintf("second%d-%d", round, i)
			if d, err = runPull(nsfs, ns, ref); err != nil {
				return nil, err
			}
			second = append(second, d)
			namespaces = append(namespaces, ns)
		}
		to, err := reg.mark()
		if err != nil {
			return nil, err
		}
		res.secondBytes += reg.blobBytes(from, to)

		layout := filepath.Join(dir, fmt.Sprintf("oci-%d", round))
		before = sampleCPU(nsfs.daemon.Process.Pid, reg.cmd.Process.Pid)
		selfBefore := selfCPU()
		start := time.Now()
		store, err := oci.New(layout)
		if err == nil {
			_, err = oras.Copy(ctx, repo, "v1", store, "v1", oras.DefaultCopyOptions)
		}
		if err != nil {
			return nil, fmt.Errorf("oras-go copy into %s: %v", layout, err)
		}
		orasTimes = append(orasTimes, time.Since(start))
		orasCPU = append(orasCPU, sampleCPU(nsfs.daemon.Process.Pid, reg.cmd.Process.Pid).since(before, selfCPU()-selfBefore))
		os.RemoveAll(layout)

		for _, ns := range namespaces {
			if err := os.RemoveAll(nsfs.path(ns)); err != nil {
				return nil, fmt.Errorf("rm -rf %s: %v", nsfs.path(ns), err)
			}
		}
		fmt.Fprintf(os.Stderr, "  pull round %d: cold %s, second namespace (median of %d) %s, oras-go %s\n", round,
			formatNs(float64(cold[round])), secondPulls, formatNs(float64(median(second[len(second)-secondPulls:]))), formatNs(float64(orasTimes[round])))
	}
	res.cold, res.second, res.oras = median(cold), median(second), median(orasTimes)
	res.coldCPU, res.orasCPU = medianCPU(coldCPU), medianCPU(orasCPU)
	return res, nil
}

// runPull runs `nsfs --mount MNT -n ns pull --plain-http -q ref` and
// returns how long the process took.
func runPull(nsfs *target, ns, ref string) (time.Duration, error) {
	d, _, err := runPullCPU(nsfs, ns, ref)
	return d, err
}

// runPullCPU is runPull that also returns the process's CPU time.
func runPullCPU(nsfs *target, ns, ref string) (time.Duration, time.Duration, error) {
	cmd := exec.Command(*nsfsBin, "--mount", nsfs.mnt, "-n", ns, "pull", "--plain-http", "-q", ref)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	d := time.Since(start)
	if err != nil {
		return 0, 0, fmt.Errorf("nsfs -n %s pull %s: %v\n%s", ns, ref, err, out.Bytes())
	}
	return d, cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime(), nil
}

// cpuShare is the CPU time (user+system) the processes of a pull spent:
// the puller (the nsfs CLI, or oras-go in this process), the nsfs daemon
// and the registry.
type cpuShare struct{ puller, daemon, registry time.Duration }

func (c cpuShare) String() string {
	return fmt.Sprintf("puller %s, nsfs daemon %s, registry %s", formatNs(float64(c.puller)), formatNs(float64(c.daemon)), formatNs(float64(c.registry)))
}

// sampleCPU reads the daemon's and the registry's CPU time so far.
func sampleCPU(daemon, registry int) cpuShare {
	return cpuShare{daemon: procCPU(daemon), registry: procCPU(registry)}
}

// since is the CPU the daemon and registry spent after before, with the
// puller's own.
func (c cpuShare) since(before cpuShare, puller time.Duration) cpuShare {
	return cpuShare{puller: puller, daemon: c.daemon - before.daemon, registry: c.registry - before.registry}
}

// procCPU is a process's utime+stime from /proc/PID/stat (clock ticks of
// 10 ms: coarse, but a pull takes hundreds).
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name, which ends at the last ')'.
	fields := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(fields) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(fields[11], 10, 64)
	stime, _ := strconv.ParseInt(fields[12], 10, 64)
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

// selfCPU is this process's CPU time so far.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func medianCPU(s []cpuShare) cpuShare {
	var p, d, r []time.Duration
	for _, c := range s {
		p, d, r = append(p, c.puller), append(d, c.daemon), append(r, c.registry)
	}
	return cpuShare{median(p), median(d), median(r)}
}
