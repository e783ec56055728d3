package main

import (
	"cmp"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nsfs/nsfs/client"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
	"golang.org/x/sys/unix"
)

// pullProgress shows a pull as `ctr pull` does. On a terminal: one line per
// blob with its state (waiting, downloading, done, exists; canceled once a
// pull that failed or was interrupted left it unstored), a bar and
// bytes/total, redrawn in place. Otherwise (a pipe, a log file): one line
// per finished blob, and one for a blob another process is writing, which
// the pull waits for,
//
//	layer-sha256:<hex>: done  1.2 MiB
//	config-sha256:<hex>: exists
//	layer-sha256:<hex>: waiting (another process is writing it)
//
// Both end with the bytes that came from the registry:
//
//	elapsed: 1.2 s  total: 12.3 MiB (10.2 MiB/s)
//
// Quiet prints nothing. It is a client.PullObserver; its methods are called
// from several goroutines.
type pullProgress struct {
	out   io.Writer
	quiet bool
	start time.Time
	total atomic.Int64 // bytes read from the registry
	// sending is the state of a blob on its way: "downloading" (pull),
	// "uploading" (push).
	sending string

	mu       sync.Mutex
	kinds    map[digest.Digest]string
	finished map[digest.Digest]bool
	bars     *mpb.Progress // nil unless out is a terminal
	blobBars map[digest.Digest]*blobBar
}

var _ client.PullObserver = (*pullProgress)(nil)

// blobBar is one blob's line on a terminal.
type blobBar struct {
	bar   *mpb.Bar
	state atomic.Value // string
	read  atomic.Int64 // bytes from the registry
}

// isTerminal says whether f is a terminal (TCGETS answers) with a size
// the bars can be drawn in (a pty nobody sized has 0 rows).
func isTerminal(f *os.File) bool {
	if _, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS); err != nil {
		return false
	}
	ws, err := unix.IoctlGetWinsize(int(f.Fd()), unix.TIOCGWINSZ)
	return err == nil && ws.Row > 0 && ws.Col > 0
}

func newPullProgress(out *os.File, name string, quiet bool) *pullProgress {
	p := &pullProgress{
		out:      out,
		quiet:    quiet,
		start:    time.Now(),
		kinds:    map[digest.Digest]string{},
		finished: map[digest.Digest]bool{},
		blobBars: map[digest.Digest]*blobBar{},
	}
	if !quiet && isTerminal(out) {
		p.bars = mpb.New(mpb.WithOutput(out), mpb.WithWidth(40), mpb.WithRefreshRate(100*time.Millisecond))
		// The first line names the image, as ctr's "REF: resolved".
		b := p.bars.New(0, barStyle(),
			mpb.PrependDecorators(decor.Name(name+":", nameColumn), decor.Name("resolved", stateColumn)),
		)
		b.SetTotal(1, true)
	}
	return p
}

// The columns of a line: the names are as wide as the widest (the ref
// is usually longer than a blob's label), the state gets a fixed width.
var (
	nameColumn  = decor.WC{C: decor.DindentRight | decor.DextraSpace | decor.DSyncWidth}
	stateColumn = decor.WC{W: 12, C: decor.DindentRight}
)

// barStyle is ctr's |++++----|.
func barStyle() mpb.BarStyleComposer {
	return mpb.BarStyle().Lbound("|").Filler("+").Tip("+").Padding("-").Rbound("|")
}

// label is how ctr names a blob: layer-sha256:<hex>.
func (p *pullProgress) label(desc ocispec.Descriptor, short bool) string {
	p.mu.Lock()
	kind, ok := p.kinds[desc.Digest]
	p.mu.Unlock()
	if !ok {
		kind = client.KindLayer
	}
	d := desc.Digest.String()
	if short && len(desc.Digest.Encoded()) > 12 {
		d = string(desc.Digest.Algorithm()) + ":" + desc.Digest.Encoded()[:12]
	}
	return kind + "-" + d
}

func (p *pullProgress) Queued(desc ocispec.Descriptor, kind string) {
	p.mu.Lock()
	if _, ok := p.kinds[desc.Digest]; !ok {
		p.kinds[desc.Digest] = kind
	}
	p.mu.Unlock()
	if p.bars != nil {
		p.bar(desc)
	}
}

// bar is desc's line, made on first use.
func (p *pullProgress) bar(desc ocispec.Descriptor) *blobBar {
	p.mu.Lock()
	b, ok := p.blobBars[desc.Digest]
	p.mu.Unlock()
	if ok {
		return b
	}
	label := p.label(desc, true)
	p.mu.Lock()
	defer p.mu.Unlock()
	if b, ok := p.blobBars[desc.Digest]; ok {
		return b
	}
	b = &blobBar{}
	b.state.Store("waiting")
	// Total 0 (set below for display only): a bar completes when finish1
	// says so, not once its bytes are read — the blob is stored only
	// after its fsync and close.
	b.bar = p.bars.New(0, barStyle(),
		mpb.PrependDecorators(
			decor.Name(label+":", nameColumn),
			decor.Any(func(decor.Statistics) string { return b.state.Load().(string) }, stateColumn),
		),
		mpb.AppendDecorators(decor.Any(func(s decor.Statistics) string {
			return formatBytes(s.Current) + " / " + formatBytes(s.Total)
		}, decor.WC{W: 24})),
	)
	b.bar.SetTotal(desc.Size, false)
	p.blobBars[desc.Digest] = b
	return b
}

func (p *pullProgress) Fetching(desc ocispec.Descriptor) {
	if p.bars != nil {
		p.bar(desc).state.Store(cmp.Or(p.sending, "downloading"))
	}
}

// Waiting: another process is writing desc. On a terminal the line
// stays (or goes back to) waiting; otherwise a line says why the pull
// seems to stall.
func (p *pullProgress) Waiting(desc ocispec.Descriptor) {
	if p.quiet {
		return
	}
	if p.bars != nil {
		p.bar(desc).state.Store("waiting")
		return
	}
	line := p.label(desc, false) + ": waiting (another process is writing it)"
	p.mu.Lock()
	fmt.Fprintln(p.out, line)
	p.mu.Unlock()
}

func (p *pullProgress) Read(desc ocispec.Descriptor, n int64) {
	p.total.Add(n)
	if p.bars == nil {
		return
	}
	b := p.bar(desc)
	b.bar.IncrInt64(n)
	// A manifest or index is stored only after what it names, yet all
	// of it is here: done, as ctr shows it (ctr stores it at once). If the
	// pull fails before it is stored, finish says canceled.
	if b.read.Add(n) == desc.Size && p.isManifest(desc) {
		b.state.Store("done")
	}
}

// isManifest: desc is a manifest or an index.
func (p *pullProgress) isManifest(desc ocispec.Descriptor) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	kind := p.kinds[desc.Digest]
	return kind == client.KindManifest || kind == client.KindIndex
}

func (p *pullProgress) Done(desc ocispec.Descriptor)   { p.finish1(desc, "done") }
func (p *pullProgress) Exists(desc ocispec.Descriptor) { p.finish1(desc, "exists") }

// finish1 ends desc's line in state ("done" or "exists").
func (p *pullProgress) finish1(desc ocispec.Descriptor, state string) {
	p.mu.Lock()
	again := p.finished[desc.Digest]
	p.finished[desc.Digest] = true
	p.mu.Unlock()
	if again || p.quiet {
		return
	}
	if p.bars != nil {
		b := p.bar(desc)
		b.state.Store(state)
		b.bar.SetCurrent(desc.Size)
		b.bar.SetTotal(-1, true)
		return
	}
	line := p.label(desc, false) + ": " + state
	if state == "done" {
		line += "  " + formatBytes(desc.Size)
	}
	p.mu.Lock()
	fmt.Fprintln(p.out, line)
	p.mu.Unlock()
}

// finish stops the bars and, after a pull that succeeded, prints the
// elapsed/total line (a failed one ends with its error instead). After a
// failure, the line of a blob that was not stored stays where it got to,
// in state canceled.
func (p *pullProgress) finish(ok bool) {
	if p.quiet {
		return
	}
	if p.bars != nil {
		p.mu.Lock()
		var unfinished []*blobBar
		for d, b := range p.blobBars {
			if !p.finished[d] {
				unfinished = append(unfinished, b)
			}
		}
		p.mu.Unlock()
		for _, b := range unfinished {
			if !ok {
				b.state.Store("canceled")
			}
			b.bar.Abort(false)
		}
		p.bars.Wait()
	}
	if !ok {
		return
	}
	elapsed := time.Since(p.start)
	total := p.total.Load()
	speed := float64(total) / elapsed.Seconds()
	fmt.Fprintf(p.out, "elapsed: %.1f s  total: %s (%s/s)\n", elapsed.Seconds(), formatBytes(total), formatBytes(int64(speed)))
}
