package fs

import (
	"os"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
)

// blobRecheck is how long an open layer blob is handed to new handles
// before the namespace's view of it is asked again.
const blobRecheck = time.Second

// layerBlobs shares the open blob of each layer of one image among the
// handles that read its files: `tar -c` or `grep -r` of an image opens
// every file, and opening the blob for each (a read of the store that
// checks the namespace still sees the layer, then an lstat and an open
// of its file) was about 7% of the daemon's CPU in a cold `tar -c`. A
// blob is looked up again once it was handed out for blobRecheck, so a
// layer the namespace no longer sees fails the reads of files opened
// from then on, as before within about a second; a handle keeps the
// descriptor it started with, as an open file does. The last handle of
// a blob older than that closes it: an image no one reads holds no
// descriptor.
type layerBlobs struct {
	mu   sync.Mutex
	open map[digest.Digest]*sharedBlob
}

type sharedBlob struct {
	file  *os.File
	refs  int  // handles using it (under layerBlobs.mu)
	stale bool // no longer handed out: closed by its last handle
}

// acquire returns the layer's open blob, opening it (open) when there is
// none fresh; release gives it back.
func (c *layerBlobs) acquire(layer digest.Digest, open func() (*os.File, error)) (*sharedBlob, error) {
	c.mu.Lock()
	if b := c.open[layer]; b != nil && !b.stale {
		b.refs++
		c.mu.Unlock()
		return b, nil
	}
	c.mu.Unlock()
	f, err := open()
	if err != nil {
		return nil, err
	}
	b := &sharedBlob{file: f, refs: 1}
	c.mu.Lock()
	if c.open == nil {
		c.open = map[digest.Digest]*sharedBlob{}
	}
	if old := c.open[layer]; old != nil {
		c.retire(layer, old)
	}
	c.open[layer] = b
	c.mu.Unlock()
	time.AfterFunc(blobRecheck, func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.retire(layer, b)
	})
	return b, nil
}

// retire stops handing b out, and closes it if no handle uses it.
func (c *layerBlobs) retire(layer digest.Digest, b *sharedBlob) {
	if c.open[layer] == b {
		delete(c.open, layer)
	}
	if !b.stale {
		b.stale = true
		if b.refs == 0 {
			b.file.Close()
		}
	}
}

func (c *layerBlobs) release(b *sharedBlob) {
	c.mu.Lock()
	defer c.mu.Unlock()
	b.refs--
	if b.refs == 0 && b.stale {
		b.file.Close()
	}
}
