package fs

import (
	"context"
	"io"
	"log"
	"os"
	"sync"

	"github.com/nsfs/nsfs/layerindex"
	"github.com/opencontainers/go-digest"
	"github.com/pkg/errors"
	"golang.org/x/sys/unix"
)

// spanPrefetch decompresses the next span of a gzip layer in the
// background while a reader goes through the layer in its order (tar
// -c, cp -r, grep -r of a tree whose tar is in name order): the daemon
// then inflates one span while the reader's requests for the files of
// the last one come and go, instead of between them. A read that is not
// part of such a pass (one cat) starts nothing.
type spanPrefetch struct {
	mu sync.Mutex
	// layers is where the last read of each layer fell.
	layers map[digest.Digest]*readPos
	// inflight are the spans being decompressed in the background; a
	// read of one waits for it rather than decompressing it again.
	inflight map[spanKey]chan struct{}
}

type readPos struct {
	start, end int64 // the span of the last read
	ahead      int64 // the start of the span last prefetched
}

type spanKey struct {
	layer digest.Digest
	start int64
}

// wait returns once the span holding abs of layer is not being
// decompressed in the background (or ctx is done).
func (p *spanPrefetch) wait(ctx context.Context, layer *layerindex.Index, abs int64) {
	start, _, ok := layer.Span(abs)
	if !ok {
		return
	}
	p.mu.Lock()
	ch := p.inflight[spanKey{layer.Digest, start}]
	p.mu.Unlock()
	if ch != nil {
		select {
		case <-ch:
		case <-ctx.Done():
		}
	}
}

// read notes a read at abs of layer (blob, its open file); when it goes
// on from the last read of the layer (the same span or the next), the
// span after it is decompressed into pool in the background.
func (p *spanPrefetch) read(layer *layerindex.Index, abs int64, blob *os.File, pool *layerindex.Pool) {
	start, end, ok := layer.Span(abs)
	if !ok || end >= layer.TarSize {
		return
	}
	p.mu.Lock()
	if p.layers == nil {
		p.layers = map[digest.Digest]*readPos{}
		p.inflight = map[spanKey]chan struct{}{}
	}
	pos := p.layers[layer.Digest]
	if pos == nil {
		if len(p.layers) >= 1<<10 {
			clear(p.layers)
		}
		pos = &readPos{start: -1, ahead: -1}
		p.layers[layer.Digest] = pos
	}
	inOrder := pos.start == start || pos.end == start
	pos.start, pos.end = start, end
	key := spanKey{layer.Digest, end}
	if !inOrder || pos.ahead == end || p.inflight[key] != nil {
		p.mu.Unlock()
		return
	}
	pos.ahead = end
	done := make(chan struct{})
	p.inflight[key] = done
	p.mu.Unlock()

	// Its own descriptor: the reader's handle may close meanwhile.
	fd, err := unix.FcntlInt(blob.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		p.finish(key, done)
		return
	}
	f := os.NewFile(uintptr(fd), blob.Name())
	go func() {
		defer p.finish(key, done)
		defer f.Close()
		// A span's decompressor keeps a descriptor of its own while the
		// span is incomplete (it outlives this reader).
		r := layerindex.NewPooledReader(layer, f, pool, func() (io.ReaderAt, io.Closer, error) {
			fd, err := unix.FcntlInt(f.Fd(), unix.F_DUPFD_CLOEXEC, 0)
			if err != nil {
				return nil, nil, errors.Wrapf(err, "layer %s", layer.Digest)
			}
			own := os.NewFile(uintptr(fd), f.Name())
			return own, own, nil
		})
		defer r.Close()
		// The span's last byte: a read decompresses only as far as it
		// needs, and the reader coming will need all of it.
		last := end
		if _, spanEnd, ok := layer.Span(end); ok {
			last = spanEnd - 1
		}
		var b [1]byte
		if _, err := r.ReadAt(b[:], last); err != nil && !isEOF(err) {
			// The read that needs the span decompresses it again and
			// answers the error.
			log.Printf("rootfs: decompressing ahead in layer %s: %v", layer.Digest, err)
		}
	}()
}

func (p *spanPrefetch) finish(key spanKey, done chan struct{}) {
	p.mu.Lock()
	delete(p.inflight, key)
	p.mu.Unlock()
	close(done)
}
