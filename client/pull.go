package client

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/nsfs/nsfs/imagegraph"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/pkg/errors"
	"golang.org/x/sync/errgroup"
	"oras.land/oras-go/v2"
	"oras.land/oras-go/v2/content"
	"oras.land/oras-go/v2/errdef"
)

// Blob kinds, as ctr names them in its progress.
const (
	KindIndex    = "index"
	KindManifest = "manifest"
	KindConfig   = "config"
	KindLayer    = "layer"
)

// PullObserver hears what a pull does with each blob, for progress. Its
// methods are called from several goroutines at once.
type PullObserver interface {
	// Queued: desc (of kind KindIndex, ...) is part of what the pull needs.
	Queued(desc ocispec.Descriptor, kind string)
	// Fetching: the bytes of desc start coming from the registry.
	Fetching(desc ocispec.Descriptor)
	// Read: n more bytes of desc came from the registry.
	Read(desc ocispec.Descriptor, n int64)
	// Waiting: another process (a concurrent pull of the same image) is
	// writing desc into the namespace; the pull waits until it has stored
	// it (then Exists) or given up (then Fetching: the pull writes it).
	Waiting(desc ocispec.Descriptor)
	// Done: desc is stored in the namespace.
	Done(desc ocispec.Descriptor)
	// Exists: the namespace already sees desc (with everything below it
	// that the pull selects), so nothing of it was fetched.
	Exists(desc ocispec.Descriptor)
}

// PullOptions choose what a pull fetches.
type PullOptions struct {
	// Platforms select an index's manifests (the first match for each);
	// empty means the host platform. AllPlatforms takes every manifest.
	Platforms    []ocispec.Platform
	AllPlatforms bool
	// Concurrency bounds the blobs fetched at once (default 3, as
	// containerd and dockerd do).
	Concurrency int
	// Observer, if set, hears about every blob.
	Observer PullObserver
	// Root, when set, is what srcRef resolves to (the caller resolved
	// it already): the pull does not ask the source again.
	Root *ocispec.Descriptor
}

// Pull copies image srcRef (a tag or digest of src, a registry repository
// or an OCI layout) into the namespace as image ref: the blobs the
// namespace cannot see are written to blobs/sha256, then the manifest or
// index to images/<ref>. From an index only the selected platforms'
// manifests, configs and layers are fetched, and the image's target stays
// the index, as in containerd. Whatever the namespace already sees (a blob
// of another namespace, under the shared policy; what an interrupted pull
// left) is not fetched again: a second pull of the same image into another
// namespace moves no blob bytes. It returns the descriptor of the target.
func (n Namespace) Pull(ctx context.Context, src oras.ReadOnlyTarget, srcRef, ref string, opts PullOptions) (ocispec.Descriptor, error) {
	if err := n.Check(); err != nil {
		return ocispec.Descriptor{}, err
	}
	if len(opts.Platforms) == 0 && !opts.AllPlatforms {
		opts.Platforms = []ocispec.Platform{HostPlatform()}
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = 3
	}
	if opts.Observer == nil {
		opts.Observer = nopObserver{}
	}
	imagePath, err := n.Target().ImagePath(ref)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	p := &puller{
		dst:       n.Target(),
		dirs:      refDirs{images: n.ImagesDir(), path: filepath.Dir(imagePath), done: make(chan struct{})},
		checks:    make(chan struct{}, existsConcurrency),
		opts:      opts,
		obs:       opts.Observer,
		blobKinds: newBlobKinds(),
		local:     map[digest.Digest]bool{},
		documents: map[digest.Digest][]byte{},
	}
	mapRoot := p.mapRoot(p.obs)
	copyOpts := oras.CopyOptions{
		MapRoot: func(ctx context.Context, src content.ReadOnlyStorage, root ocispec.Descriptor) (ocispec.Descriptor, error) {
			p.root = root.Digest // before the graph is walked
			return mapRoot(ctx, src, root)
		},
		CopyGraphOptions: oras.CopyGraphOptions{
			Concurrency:    opts.Concurrency,
			FindSuccessors: p.findSuccessors,
			PostCopy: func(_ context.Context, desc ocispec.Descriptor) error {
				if p.isLocal(desc) {
					p.obs.Exists(desc)
				} else {
					p.markStored(desc)
					p.obs.Done(desc)
				}
				return nil
			},
			OnCopySkipped: func(_ context.Context, desc ocispec.Descriptor) error {
				p.obs.Exists(desc)
				return nil
			},
		},
	}
	// The ref's directories are durable commits of their own, one after
	// another: made meanwhile, they cost a pull that finds every blob in
	// the store nothing but the wait for the last.
	p.dirs.start()
	root, err := oras.Copy(ctx, pullSource{ReadOnlyTarget: src, p: p}, srcRef, pullTarget{Target: p.dst, p: p}, ref, copyOpts)
	if err != nil {
		// No image: the directories made for it go.
		p.dirs.remove()
		// A daemon killed mid-pull fails the write in flight with
		// ECONNABORTED and what follows with ENOTCONN: say so.
		err = unwrapCopyError(err)
		if errors.Is(err, syscall.EDQUOT) {
			n.dropStored(p.storedBlobs()) // the namespace stays as it was
			return ocispec.Descriptor{}, n.overQuota(err, p.wanted())
		}
		return ocispec.Descriptor{}, DaemonGone(err, n.Mount.Dir)
	}
	return root, nil
}

// unwrapCopyError drops oras's "failed to perform X on source" framing,
// which says nothing a user can act on; the inner error names the blob.
func unwrapCopyError(err error) error {
	var ce *oras.CopyError
	if errors.As(err, &ce) && ce.Err != nil {
		return ce.Err
	}
	return err
}

// puller is the state of one Pull.
type puller struct {
	dst  *Target
	opts PullOptions
	obs  PullObserver
	root digest.Digest // the image's manifest or index
	dirs refDirs
	// checks holds a token per Exists check under way (checking).
	checks chan struct{}

	blobKinds // with the size of every blob of the image this pull wants

	mu    sync.Mutex
	local map[digest.Digest]bool // bytes read from the namespace, not the registry
	// stored are the blobs this pull wrote into the namespace.
	stored []digest.Digest
	// documents are the manifests and indexes read so far (verified),
	// so that each is read once: to list its children, then to write
	// the image.
	documents map[digest.Digest][]byte
}

func (p *puller) document(d digest.Digest) []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.documents[d]
}

func (p *puller) keepDocument(d digest.Digest, data []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.documents[d] = data
}

func (p *puller) markStored(desc ocispec.Descriptor) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stored = append(p.stored, desc.Digest)
}

func (p *puller) storedBlobs() []digest.Digest {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.stored)
}

func (p *puller) markLocal(desc ocispec.Descriptor) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.local[desc.Digest] = true
}

func (p *puller) isLocal(desc ocispec.Descriptor) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.local[desc.Digest]
}

// findSuccessors is the graph oras.Copy walks: a manifest's config and
// layers (not its subject), an index's selected manifests.
func (p *puller) findSuccessors(ctx context.Context, fetcher content.Fetcher, desc ocispec.Descriptor) ([]ocispec.Descriptor, error) {
	children, err := p.successors(ctx, fetcher, desc)
	if err != nil {
		return nil, err
	}
	for _, c := range children {
		p.obs.Queued(c, p.kind(c))
	}
	return children, nil
}

// successors lists what the pull needs below desc, read through fetcher,
// and records each child's kind.
func (p *puller) successors(ctx context.Context, fetcher content.Fetcher, desc ocispec.Descriptor) ([]ocispec.Descriptor, error) {
	if !imagegraph.IsDocument(desc.MediaType) {
		return nil, nil
	}
	data := p.document(desc.Digest)
	if data == nil {
		var err error
		if data, err = imagegraph.Fetch(ctx, fetcher, desc); err != nil {
			return nil, errors.Wrapf(err, "%s %s", p.kind(desc), desc.Digest)
		}
		p.keepDocument(desc.Digest, data)
	}
	return p.successorsOf(desc, data)
}

// successorsOf is successors of document desc, whose bytes are data.
func (p *puller) successorsOf(desc ocispec.Descriptor, data []byte) ([]ocispec.Descriptor, error) {
	doc, err := imagegraph.Parse(data)
	if err != nil {
		return nil, errors.Errorf("%s %s: %v", p.kind(desc), desc.Digest, err)
	}
	if doc.IsIndex() {
		children, err := p.selectManifests(desc, descriptors(doc.Children))
		if err != nil {
			return nil, err
		}
		for _, c := range children {
			kind := KindManifest
			if imagegraph.IsIndex(c.MediaType) {
				kind = KindIndex
			}
			p.setKind(c, kind)
		}
		return children, nil
	}
	var children []ocispec.Descriptor
	for i, c := range doc.Children {
		kind := KindLayer
		if i == 0 {
			kind = KindConfig
		} else if imagegraph.IsNonDistributable(c.MediaType) {
			continue // registries do not serve it
		}
		p.setKind(c.Descriptor, kind)
		children = append(children, c.Descriptor)
	}
	return children, nil
}

// descriptors are the descriptors of children.
func descriptors(children []imagegraph.Child) []ocispec.Descriptor {
	out := make([]ocispec.Descriptor, len(children))
	for i, c := range children {
		out[i] = c.Descriptor
	}
	return out
}

// selectManifests keeps, in the index's order, the first manifest that
// matches each wanted platform, and the children that name no platform
// (as containerd does); with AllPlatforms, every child.
func (p *puller) selectManifests(index ocispec.Descriptor, children []ocispec.Descriptor) ([]ocispec.Descriptor, error) {
	if p.opts.AllPlatforms {
		return children, nil
	}
	keep := make([]bool, len(children))
	for _, want := range p.opts.Platforms {
		for i, c := range children {
			if c.Platform != nil && platformMatches(want, *c.Platform) {
				keep[i] = true
				break
			}
		}
	}
	var out []ocispec.Descriptor
	var offered []string
	for i, c := range children {
		if c.Platform == nil {
			keep[i] = true
		} else {
			offered = append(offered, FormatPlatform(normalizePlatform(*c.Platform)))
		}
		if keep[i] {
			out = append(out, c)
		}
	}
	// As ctr: of several platforms, those the index lacks are skipped;
	// only none at all is an error.
	if len(out) == 0 && len(children) > 0 {
		var wanted []string
		for _, w := range p.opts.Platforms {
			wanted = append(wanted, FormatPlatform(w))
		}
		what := "platform " + wanted[0]
		if len(wanted) > 1 {
			what = "any of the platforms " + strings.Join(wanted, ", ")
		}
		slices.Sort(offered)
		return nil, errors.Errorf("index %s has no manifest for %s (it has %s)", index.Digest,
			what, strings.Join(slices.Compact(offered), ", "))
	}
	return out, nil
}

// pullTarget is the namespace as oras.Copy's destination. Exists of a
// manifest or index means "it and everything below it that this pull
// selects": oras.Copy skips the whole sub-graph of a node that exists, and
// a manifest another namespace stored (or an index pulled for other
// platforms) says nothing about the blobs this pull needs.
type pullTarget struct {
	*Target
	p *puller
}

func (t pullTarget) Exists(ctx context.Context, desc ocispec.Descriptor) (bool, error) {
	if !imagegraph.IsDocument(desc.MediaType) {
		release, err := t.p.checking(ctx)
		if err != nil {
			return false, err
		}
		defer release()
		return t.Target.Exists(ctx, desc)
	}
	release, err := t.p.checking(ctx)
	if err != nil {
		return false, err
	}
	ok, err := t.readDocument(ctx, desc)
	release()
	if err != nil || !ok {
		return ok, err
	}
	children, err := t.p.successors(ctx, t.Target, desc)
	if err != nil {
		return false, err
	}
	// The children at once: each check is a few round trips to the
	// daemon, which answers them in parallel.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(existsConcurrency)
	var missing atomic.Bool
	for _, c := range children {
		g.Go(func() error {
			ok, err := t.Exists(gctx, c)
			if err == nil && !ok {
				missing.Store(true)
				cancel() // one is enough to answer
			}
			return err
		})
	}
	if err := g.Wait(); err != nil && !missing.Load() {
		return false, err
	}
	return !missing.Load(), nil
}

// refDirs makes an image's directories (images/<prefix>/...), one
// durable commit each (two for images/host/repo:tag), while the pull
// reads and checks what the namespace holds already.
type refDirs struct {
	images string // the namespace's images/
	path   string // the image's directory, below images
	once   sync.Once
	done   chan struct{}
	err    error
	made   []string // the directories this pull made, deepest first
}

// start makes them in the background, once: each by mkdir from the
// top, an existing one (EEXIST) left as it is. No stat asks first: a
// new namespace has none of them, and mkdir says which exist. A failed
// pull of another ref under the same prefix removes the empty ones it
// made, which may be ones this chain found: a mkdir then fails with
// ENOENT, and the chain is made again from the top. That pull removes
// each directory once, so one more try per directory of the chain is
// enough for it.
func (d *refDirs) start() {
	d.once.Do(func() {
		go func() {
			defer close(d.done)
			rel, err := filepath.Rel(d.images, d.path)
			if err != nil || rel == "." || strings.HasPrefix(rel, "..") {
				return // images/ itself, or no ref (ImagePath refused it)
			}
			names := strings.Split(rel, string(filepath.Separator))
			d.err = d.mkdirChain(names)
			for try := 0; try < len(names) && errors.Is(d.err, os.ErrNotExist); try++ {
				d.err = d.mkdirChain(names)
			}
		}()
	})
}

// mkdirChain makes the directories names below images, from the top,
// and remembers those it made.
func (d *refDirs) mkdirChain(names []string) error {
	dir := d.images
	for _, name := range names {
		dir = filepath.Join(dir, name)
		err := os.Mkdir(dir, 0o755)
		switch {
		case err == nil:
			d.made = append([]string{dir}, d.made...)
		case errors.Is(err, os.ErrExist):
		default:
			return err
		}
	}
	return nil
}

// wait makes them, if start did not, and says whether that failed.
func (d *refDirs) wait() error {
	d.start()
	<-d.done
	return d.err
}

// remove takes away, once made, those of them this pull made that are
// still empty.
func (d *refDirs) remove() {
	_ = d.wait()
	removeEmptyDirs(d.made)
}

// existsConcurrency bounds the blobs Exists checks at once: the
// goroutines of one level of the graph, and the files the whole pull has
// open for them (the levels nest: an index's manifests check their
// blobs), which count against the caller's open-file limit of the mount.
const existsConcurrency = 8

// checking takes one of the pull's existsConcurrency slots for a check
// that opens a file of the namespace; release gives it back.
func (p *puller) checking(ctx context.Context) (release func(), err error) {
	select {
	case p.checks <- struct{}{}:
		return func() { <-p.checks }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// readDocument reads document desc from the namespace when the namespace
// can see it, as Target.Exists tells, with one open: it keeps its bytes
// for successors and Tag.
func (t pullTarget) readDocument(ctx context.Context, desc ocispec.Descriptor) (bool, error) {
	if t.p.document(desc.Digest) != nil {
		return t.Target.Exists(ctx, desc)
	}
	rc, err := t.Target.Fetch(ctx, desc)
	if errors.Is(err, errdef.ErrNotFound) {
		return false, nil // absent, or being written: it does not open until committed
	}
	if err != nil {
		return false, err
	}
	defer rc.Close()
	if f, ok := rc.(*os.File); ok {
		if fi, err := f.Stat(); err != nil {
			return false, errors.Wrapf(err, "blob %s in namespace %q", desc.Digest, t.ns.Name)
		} else if fi.Size() != desc.Size {
			return false, nil // as Target.Exists: Push says what is wrong
		}
	}
	if desc.Size > imagegraph.MaxDocumentSize {
		return true, nil // successors says it is too big
	}
	data, err := content.ReadAll(rc, desc)
	if err != nil {
		return false, errors.Wrapf(err, "%s %s in namespace %q", t.p.kind(desc), desc.Digest, t.ns.Name)
	}
	t.p.keepDocument(desc.Digest, data)
	return true, nil
}

// Tag writes the image from the bytes the pull read already, verified.
func (t pullTarget) Tag(ctx context.Context, desc ocispec.Descriptor, ref string) error {
	if err := t.p.dirs.wait(); err != nil {
		return errors.Wrapf(err, "image %q in namespace %q: creating its directory", ref, t.ns.Name)
	}
	data := t.p.document(desc.Digest)
	if data == nil {
		return t.Target.Tag(ctx, desc, ref)
	}
	path, err := t.ImagePath(ref)
	if err != nil {
		return err
	}
	return t.WriteImage(ref, path, data)
}

// Push stores desc. A blob that another process stored meanwhile (a
// concurrent pull of the same image: Target.Push waited for it) came from
// the namespace, not the registry, and is reported as existing.
func (t pullTarget) Push(ctx context.Context, desc ocispec.Descriptor, r io.Reader) error {
	err := t.Target.push(ctx, desc, r, func() { t.p.obs.Waiting(desc) })
	var fe *fetchError
	switch {
	case errors.Is(err, errdef.ErrAlreadyExists):
		t.p.markLocal(desc)
	case errors.As(err, &fe):
		return fe.err // the registry refused it: "receiving 0 bytes" says nothing more
	}
	return err
}

// pullSource is the registry as oras.Copy's source. It reads what the
// namespace already sees from the namespace (a manifest whose sub-graph is
// incomplete), and counts the bytes that come from the registry.
type pullSource struct {
	oras.ReadOnlyTarget
	p *puller
}

// Resolve answers srcRef without asking the source when the caller
// resolved it already (PullOptions.Root).
func (s pullSource) Resolve(ctx context.Context, ref string) (ocispec.Descriptor, error) {
	if root := s.p.opts.Root; root != nil && ref == root.Digest.String() {
		return *root, nil
	}
	return s.ReadOnlyTarget.Resolve(ctx, ref)
}

func (s pullSource) Fetch(ctx context.Context, desc ocispec.Descriptor) (io.ReadCloser, error) {
	if ok, err := s.p.dst.Exists(ctx, desc); err == nil && ok {
		if rc, err := s.p.dst.Fetch(ctx, desc); err == nil {
			s.p.markLocal(desc)
			return rc, nil
		}
	}
	// oras.Copy fetches before it pushes; the GET waits for the first
	// read, so that a blob Push finds stored meanwhile (by a concurrent
	// pull) is never requested from the registry.
	return &lazyReader{open: func() (io.ReadCloser, error) {
		s.p.obs.Fetching(desc)
		rc, err := s.ReadOnlyTarget.Fetch(ctx, desc)
		if err != nil {
			return nil, &fetchError{err: errors.Wrapf(err, "fetching %s %s", s.p.kind(desc), desc.Digest)}
		}
		return &countingReader{rc: rc, read: func(n int64) { s.p.obs.Read(desc, n) }}, nil
	}}, nil
}

// lazyReader opens its source at the first Read.
type lazyReader struct {
	open func() (io.ReadCloser, error)
	rc   io.ReadCloser
	err  error
}

func (l *lazyReader) Read(b []byte) (int, error) {
	if l.rc == nil && l.err == nil {
		l.rc, l.err = l.open()
	}
	if l.err != nil {
		return 0, l.err
	}
	return l.rc.Read(b)
}

func (l *lazyReader) Close() error {
	if l.rc == nil {
		return nil
	}
	return l.rc.Close()
}

// fetchError is the registry's refusal to send a blob (as opposed to a
// connection that broke mid-blob).
type fetchError struct{ err error }

func (e *fetchError) Error() string { return e.err.Error() }
func (e *fetchError) Unwrap() error { return e.err }

// countingReader reports every read's byte count.
type countingReader struct {
	rc   io.ReadCloser
	read func(int64)
}

func (c *countingReader) Read(b []byte) (int, error) {
	n, err := c.rc.Read(b)
	if n > 0 {
		c.read(int64(n))
	}
	return n, err
}

func (c *countingReader) Close() error { return c.rc.Close() }

type nopObserver struct{}

func (nopObserver) Queued(ocispec.Descriptor, string) {}
func (nopObserver) Fetching(ocispec.Descriptor)       {}
func (nopObserver) Read(ocispec.Descriptor, int64)    {}
func (nopObserver) Waiting(ocispec.Descriptor)        {}
func (nopObserver) Done(ocispec.Descriptor)           {}
func (nopObserver) Exists(ocispec.Descriptor)         {}
