package layerindex

import (
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nsfs/nsfs/blobs"
	"github.com/opencontainers/go-digest"
	"github.com/pkg/errors"
	"golang.org/x/sys/unix"
)

// Cache keeps the index of each layer in a directory, one file per
// digest (sha256/<hex>), and the indexes in use in memory. A missing or
// damaged file is rebuilt from the blob; concurrent asks for one digest
// build it once.
type Cache struct {
	dir  string // holds sha256/
	opts BuildOptions

	mu       sync.Mutex
	building map[digest.Digest]*building
	mem      map[digest.Digest]*Index
	order    []digest.Digest // of mem, oldest first

	// Builds counts the indexes built (tests: concurrent readers build
	// once; a remount builds none).
	Builds atomic.Int64
	// Built, when set, hears of each index built (the daemon logs it).
	Built func(idx *Index, took time.Duration)
}

// StoreDir is where the indexes of a store's layers live: beside its
// blobs/, in the store's root.
func StoreDir(storeRoot string) string { return filepath.Join(storeRoot, "layerindex") }

// CollectStore removes the indexes of the store at storeRoot whose blob
// file is gone (gc deleted it), and returns how many.
func CollectStore(storeRoot string) (int, error) {
	if _, err := os.Stat(filepath.Join(StoreDir(storeRoot), "sha256")); os.IsNotExist(err) {
		return 0, nil
	}
	c, err := OpenCache(StoreDir(storeRoot), BuildOptions{})
	if err != nil {
		return 0, err
	}
	return c.Collect(func(d digest.Digest) bool {
		_, err := os.Lstat(filepath.Join(storeRoot, blobs.RelPath(d)))
		return err == nil
	})
}

type building struct {
	done chan struct{}
	idx  *Index
	err  error
}

// memIndexes bounds the indexes kept in memory (each the size of its
// table); the rest are read from their files again when asked.
const memIndexes = 64

// OpenCache opens (making it) the index directory dir.
func OpenCache(dir string, opts BuildOptions) (*Cache, error) {
	if err := os.MkdirAll(filepath.Join(dir, "sha256"), 0o700); err != nil {
		return nil, errors.Wrap(err, "layer index directory")
	}
	return &Cache{dir: dir, opts: opts, building: map[digest.Digest]*building{}, mem: map[digest.Digest]*Index{}}, nil
}

// Dir is the directory the cache keeps its files in.
func (c *Cache) Dir() string { return c.dir }

func (c *Cache) path(d digest.Digest) string {
	return filepath.Join(c.dir, "sha256", d.Encoded())
}

// Get returns the index of layer d (size bytes): from memory, from its
// file, or built from the blob open returns (then stored).
func (c *Cache) Get(d digest.Digest, size int64, open func() (io.ReadCloser, error)) (*Index, error) {
	if err := d.Validate(); err != nil || d.Algorithm() != digest.SHA256 {
		return nil, errors.Errorf("layer %q: not a sha256 digest", d)
	}
	c.mu.Lock()
	if idx := c.mem[d]; idx != nil {
		c.mu.Unlock()
		return idx, nil
	}
	if b := c.building[d]; b != nil {
		c.mu.Unlock()
		<-b.done
		return b.idx, b.err
	}
	b := &building{done: make(chan struct{})}
	c.building[d] = b
	c.mu.Unlock()

	b.idx, b.err = c.load(d, size, open)
	c.mu.Lock()
	delete(c.building, d)
	if b.err == nil {
		c.remember(d, b.idx)
	}
	c.mu.Unlock()
	close(b.done)
	return b.idx, b.err
}

// Has says whether the index of d is at hand (in memory or in its file,
// unchecked), so that nothing need be read to know d is a layer.
func (c *Cache) Has(d digest.Digest) bool {
	if d.Validate() != nil {
		return false
	}
	c.mu.Lock()
	idx := c.mem[d]
	c.mu.Unlock()
	if idx != nil {
		return true
	}
	st, err := os.Lstat(c.path(d))
	return err == nil && st.Mode().IsRegular()
}

func (c *Cache) remember(d digest.Digest, idx *Index) {
	if len(c.order) >= memIndexes {
		delete(c.mem, c.order[0])
		c.order = c.order[1:]
	}
	c.mem[d] = idx
	c.order = append(c.order, d)
}

func (c *Cache) load(d digest.Digest, size int64, open func() (io.ReadCloser, error)) (*Index, error) {
	// A layer its file refuses is judged again by the rules of this
	// nsfs, which may show it (earlier ones refused names with a leading
	// "/"); refused layers are rare, and kept in memory once built.
	if idx, err := c.readFile(d); err == nil && idx.Digest == d && (size < 0 || idx.Size == size) && idx.Refused == "" {
		return idx, nil
	}
	rc, err := open()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	start := time.Now()
	idx, err := Build(rc, d, size, c.opts)
	if err != nil {
		return nil, err
	}
	c.Builds.Add(1)
	if c.Built != nil {
		c.Built(idx, time.Since(start))
	}
	if err := c.writeFile(idx); err != nil {
		// Served from memory all the same; the next mount builds again.
		return idx, nil
	}
	return idx, nil
}

// readFile reads and checks the index file of d.
func (c *Cache) readFile(d digest.Digest) (*Index, error) {
	path := c.path(d)
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		return nil, errors.Errorf("layer index %s: not a regular file", d)
	}
	idx, err := decodeFile(f, path, st.Size())
	if err != nil {
		return nil, errors.WithMessagef(err, "layer index %s", d)
	}
	return idx, nil
}

// writeFile stores idx durably: a temporary file, fsynced, renamed.
// The windows are then read from the file, not kept in memory.
func (c *Cache) writeFile(idx *Index) error {
	data, checkpoints, windowsStart, err := encodeFile(idx)
	if err != nil {
		return err
	}
	dir := filepath.Join(c.dir, "sha256")
	tmp, err := os.CreateTemp(dir, ".tmp-")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	path := c.path(idx.Digest)
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	if d, err := os.Open(dir); err == nil {
		unix.Fsync(int(d.Fd()))
		d.Close()
	}
	idx.Checkpoints, idx.windows = checkpoints, &windowFile{path: path, start: windowsStart}
	return nil
}

// Collect removes the index files of layers keep says are gone, and
// temporary files left by a crash; it returns how many it removed.
func (c *Cache) Collect(keep func(digest.Digest) bool) (int, error) {
	dir := filepath.Join(c.dir, "sha256")
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0, errors.Wrap(err, "layer index directory")
	}
	removed := 0
	for _, e := range entries {
		d := digest.NewDigestFromEncoded(digest.SHA256, e.Name())
		if d.Validate() == nil && keep(d) {
			continue
		}
		if d.Validate() == nil {
			c.mu.Lock()
			delete(c.mem, d)
			c.mu.Unlock()
		}
		if err := os.Remove(filepath.Join(dir, e.Name())); err == nil {
			removed++
		}
	}
	return removed, nil
}
