package integration

import (
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// A real registry for the pull tests: Debian's docker-registry (the
// distribution registry) on 127.0.0.1 and a free port, with a private
// config and storage directory, its access log captured, stopped by PID.

const registryBin = "/usr/bin/docker-registry"

// Credentials of the registry that requires a password. The htpasswd line
// is bcrypt (cost 5) of registryPassword, computed once with
// python3 -c 'import crypt; print(crypt.crypt("nsfs-secret", "$2a$05$nsfsTestSaltForRegistry"))'
// (golang.org/x/crypto is not in the module graph).
const (
	registryUser     = "nsfs"
	registryPassword = "nsfs-secret"
	registryHtpasswd = "nsfs:$2a$05$nsfsTestSaltForRegiste84T8SqfAfV/yMAkWqn9nRyx.vXBOVUe\n"
)

// testRegistry is one docker-registry process.
type testRegistry struct {
	addr    string      // 127.0.0.1:PORT
	out     *syncBuffer // stdout and stderr: the access log and the app log
	cmd     *exec.Cmd
	exited  chan struct{}
	markers atomic.Int64
}

type registryOption func(*registryConfig)

type registryConfig struct{ htpasswd bool }

// withPassword makes the registry require registryUser/registryPassword.
func withPassword() registryOption { return func(c *registryConfig) { c.htpasswd = true } }

func requireRegistry(t *testing.T) {
	t.Helper()
	requireMount(t)
	if _, err := os.Stat(registryBin); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is missing (apt-get install docker-registry)", registryBin)
		}
		t.Skipf("%s is missing (apt-get install docker-registry)", registryBin)
	}
}

// freePort is a TCP port on 127.0.0.1 that nothing listened on a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startRegistry runs docker-registry and returns once /v2/ answers.
func startRegistry(t *testing.T, opts ...registryOption) *testRegistry {
	t.Helper()
	requireRegistry(t)
	var cfg registryConfig
	for _, o := range opts {
		o(&cfg)
	}
	// A port another process grabs between freePort and the registry's
	// listen makes it exit at once: try again with another.
	var lastErr string
	for attempt := 0; attempt < 3; attempt++ {
		r, err := tryStartRegistry(t, cfg)
		if err == "" {
			return r
		}
		lastErr = err
	}
	t.Fatalf("docker-registry did not start: %s", lastErr)
	return nil
}

func tryStartRegistry(t *testing.T, cfg registryConfig) (*testRegistry, string) {
	t.Helper()
	dir := t.TempDir()
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	auth := ""
	if cfg.htpasswd {
		path := filepath.Join(dir, "htpasswd")
		if err := os.WriteFile(path, []byte(registryHtpasswd), 0o600); err != nil {
			t.Fatal(err)
		}
		auth = fmt.Sprintf("auth:\n  htpasswd:\n    realm: nsfs-test\n    path: %s\n", path)
	}
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
  secret: nsfs-integration-test
%s`, filepath.Join(dir, "storage"), addr, auth)
	configPath := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(configPath, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	r := &testRegistry{addr: addr, out: &syncBuffer{}, exited: make(chan struct{})}
	r.cmd = childCommand(registryBin, "serve", configPath)
	r.cmd.Stdout, r.cmd.Stderr = r.out, r.out
	proc, err := spawnWithin(t, r.cmd, registryTimeout)
	if err != nil {
		t.Fatalf("start %s: %v", registryBin, err)
	}
	go func() {
		<-proc.exited
		close(r.exited)
	}()
	t.Cleanup(func() {
		r.stop(t)
		if t.Failed() {
			t.Logf("docker-registry at %s output:\n%s", r.addr, r.out)
		}
	})

	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(15 * time.Second)
	for {
		select {
		case <-r.exited:
			return nil, fmt.Sprintf("exited at start:\n%s", r.out)
		default:
		}
		resp, err := client.Get("http://" + addr + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusUnauthorized {
				return r, ""
			}
		}
		if time.Now().After(deadline) {
			return nil, fmt.Sprintf("/v2/ at %s does not answer after 15 s:\n%s", addr, r.out)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop ends our registry process by its PID: SIGTERM, then SIGKILL.
func (r *testRegistry) stop(t *testing.T) {
	select {
	case <-r.exited:
		return
	default:
	}
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.exited:
	case <-time.After(5 * time.Second):
		_ = r.cmd.Process.Kill()
		<-r.exited
	}
}

// mark returns a position in the access log after which every request
// made before the call is logged: the registry logs a request once it has
// answered it, so a request of our own made now, once logged, comes after
// the answers a finished client got.
func (r *testRegistry) mark(t *testing.T) int {
	t.Helper()
	// A GET that a killed or failed client left behind is logged when the
	// registry notices, which can be after a marker sent now: wait until
	// the log has been quiet for a while, so that the marker comes after
	// it (bounded: a request the test holds on purpose never logs).
	quiet, giveUp := time.Now(), time.Now().Add(5*time.Second)
	for last := r.out.String(); time.Since(quiet) < 500*time.Millisecond && time.Now().Before(giveUp); {
		time.Sleep(20 * time.Millisecond)
		if now := r.out.String(); len(now) != len(last) {
			last, quiet = now, time.Now()
		}
	}
	marker := fmt.Sprintf("nsfs-marker-%d", r.markers.Add(1))
	resp, err := http.Get("http://" + r.addr + "/v2/?" + marker)
	if err != nil {
		t.Fatalf("marker request to the registry: %v", err)
	}
	resp.Body.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		out := r.out.String()
		if i := strings.Index(out, marker); i >= 0 {
			return i
		}
		if time.Now().After(deadline) {
			t.Fatalf("the registry's access log does not show %s", marker)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

var blobGETLine = regexp.MustCompile(`"GET /v2/[^ "]+/blobs/(sha256:[0-9a-f]{64}) HTTP/[0-9.]+"`)

// blobGETs counts the blob GETs the access log shows after position from
// (from mark), by digest.
func (r *testRegistry) blobGETs(t *testing.T, from int) map[string]int {
	t.Helper()
	end := r.mark(t)
	counts := map[string]int{}
	for _, m := range blobGETLine.FindAllStringSubmatch(r.out.String()[from:end], -1) {
		counts[m[1]]++
	}
	return counts
}

var requestLine = regexp.MustCompile(`"(GET|HEAD|POST|PUT|PATCH|DELETE) /v2/[^ "]* HTTP/[0-9.]+"`)

// requestsSince counts the requests the access log shows after position
// from (from mark), besides mark's own.
func (r *testRegistry) requestsSince(t *testing.T, from int) int {
	t.Helper()
	end := r.mark(t)
	n := 0
	for _, line := range requestLine.FindAllString(r.out.String()[from:end], -1) {
		if !strings.Contains(line, "nsfs-marker-") {
			n++
		}
	}
	return n
}

// assertBlobGETs checks that exactly want (each once) were fetched since from.
func (r *testRegistry) assertBlobGETs(t *testing.T, what string, from int, want ...blob) {
	t.Helper()
	got := r.blobGETs(t, from)
	wantCounts := map[string]int{}
	for _, b := range want {
		wantCounts[b.digest()] = 1
	}
	if fmt.Sprint(got) != fmt.Sprint(wantCounts) {
		t.Errorf("%s: blob GETs in the registry's access log:\n got: %v\nwant: %v", what, got, wantCounts)
	}
}

// startBlobProxy runs a reverse proxy on 127.0.0.1 in front of reg and
// returns its address. The GET of blob digest() (none while it says "")
// passes on its first `after` bytes; every read past them asks beyond,
// whose error ends the body there, while nil lets the rest through. Other
// requests pass through. It is closed at cleanup, after the cleanups its
// caller registers later (which must release what beyond waits for).
func startBlobProxy(t *testing.T, reg *testRegistry, digest func() string, after int64, beyond func() error) string {
	t.Helper()
	upstream, err := url.Parse("http://" + reg.addr)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(upstream)
	rp.FlushInterval = -1 // pass bytes on at once, so `after` is what the client got
	rp.ModifyResponse = func(resp *http.Response) error {
		if d := digest(); d != "" && resp.Request.Method == http.MethodGet && strings.HasSuffix(resp.Request.URL.Path, "/blobs/"+d) {
			resp.Body = &heldBody{rc: resp.Body, left: after, beyond: beyond}
		}
		return nil
	}
	rp.ErrorLog = log.New(io.Discard, "", 0) // cuts, and clients killed at cleanup, are on purpose
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: rp}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return l.Addr().String()
}

// heldBody is a blob's body in startBlobProxy: `left` bytes to pass on
// before beyond decides.
type heldBody struct {
	rc     io.ReadCloser
	left   int64
	beyond func() error
}

func (h *heldBody) Read(b []byte) (int, error) {
	if h.left <= 0 {
		if err := h.beyond(); err != nil {
			return 0, err
		}
		return h.rc.Read(b)
	}
	if int64(len(b)) > h.left {
		b = b[:h.left]
	}
	n, err := h.rc.Read(b)
	h.left -= int64(n)
	return n, err
}

func (h *heldBody) Close() error { return h.rc.Close() }

// cutProxy is a reverse proxy on 127.0.0.1 in front of a registry that
// interrupts the GET of one blob once it has passed `after` bytes: it either
// stalls (until the test is done) or breaks the connection, as a registry
// that dies mid-blob does. Other requests pass through.
type cutProxy struct {
	addr    string
	target  atomic.Value // string: the digest to cut, "" to pass everything
	stall   bool
	reached chan struct{} // closed once the cut blob has sent `after` bytes
	once    sync.Once
	release chan struct{}
}

func startCutProxy(t *testing.T, reg *testRegistry, after int64, stall bool) *cutProxy {
	t.Helper()
	p := &cutProxy{stall: stall, reached: make(chan struct{}), release: make(chan struct{})}
	p.target.Store("")
	target := func() string { d, _ := p.target.Load().(string); return d }
	p.addr = startBlobProxy(t, reg, target, after, p.cutHere)
	t.Cleanup(func() { close(p.release) })
	return p
}

// cut makes the proxy interrupt the GET of blob b (nil: pass everything).
func (p *cutProxy) cut(b *blob) {
	if b == nil {
		p.target.Store("")
	} else {
		p.target.Store(b.digest())
	}
}

// cutHere is what the cut blob's reads past `after` get: a broken
// connection, once the test is done if the proxy stalls.
func (p *cutProxy) cutHere() error {
	p.once.Do(func() { close(p.reached) })
	if p.stall {
		<-p.release
	}
	return fmt.Errorf("cut by the test proxy")
}
