package main

import (
	"context"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/nsfs/nsfs/client"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/pkg/errors"
	"github.com/urfave/cli/v2"
	"oras.land/oras-go/v2/errdef"
	"oras.land/oras-go/v2/registry"
	"oras.land/oras-go/v2/registry/remote"
	"oras.land/oras-go/v2/registry/remote/auth"
	"oras.land/oras-go/v2/registry/remote/credentials"
	"oras.land/oras-go/v2/registry/remote/errcode"
	"oras.land/oras-go/v2/registry/remote/retry"
)

// pullCommand fetches an image from a registry into the namespace, as
// `ctr pull` does; it is both `nsfs pull` and `nsfs images pull`.
//
//	$ nsfs pull --plain-http --platform linux/arm64 127.0.0.1:5000/library/multi:v1
//	config-sha256:f1feefb7…74f4dbdf: done  225.0 B
//	layer-sha256:80a2ba83…0925d461: done  2.0 MiB
//	layer-sha256:049cc1d8…c19b496e: done  5.0 MiB
//	manifest-sha256:2fc05802…183105ae: done  672.0 B
//	index-sha256:4ded11e3…8cbadcd7: done  645.0 B
//	elapsed: 0.1 s  total: 7.0 MiB (64.6 MiB/s)
//
// (digests shortened here; the command prints them whole).
var pullCommand = &cli.Command{
	Name:      "pull",
	Usage:     "fetch an image from a registry into the namespace",
	ArgsUsage: "REF",
	Description: `Fetches REF (a Docker reference: "redis" is docker.io/library/redis:latest)
and stores it as the image REF of the namespace: the blobs the namespace cannot see
yet go to blobs/sha256, then the manifest or index to images/REF. From an index, only
the manifests of the selected platforms (the host's by default) are fetched, with their
configs and layers; the image's target stays the index. Credentials come from the
Docker config ($DOCKER_CONFIG/config.json, else ~/.docker/config.json).`,
	Flags: []cli.Flag{
		&cli.BoolFlag{Name: "plain-http", Usage: "talk to the registry over HTTP, without TLS"},
		&cli.StringSliceFlag{Name: "platform", Usage: "fetch the manifest of platform `P` (os/arch[/variant], or an os or an architecture alone) from an index; repeatable, and those the index lacks are skipped (default: the host's, " + client.FormatPlatform(client.HostPlatform()) + ")"},
		&cli.BoolFlag{Name: "all-platforms", Usage: "fetch every platform of an index"},
		&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "print nothing but errors"},
	},
	Action: pullAction,
}

func pullAction(c *cli.Context) error {
	if c.NArg() != 1 {
		return usageError(c, "one REF is required")
	}
	name, err := client.NormalizeDockerRef(c.Args().First())
	if err != nil {
		return err
	}
	opts := client.PullOptions{AllPlatforms: c.Bool("all-platforms")}
	for _, s := range c.StringSlice("platform") {
		p, err := client.ParsePlatform(s)
		if err != nil {
			return err
		}
		opts.Platforms = append(opts.Platforms, p)
	}
	if opts.AllPlatforms && len(opts.Platforms) > 0 {
		return errors.New("--platform and --all-platforms exclude each other")
	}
	repo, object, creds, err := openRepository(name, c.Bool("plain-http"))
	if err != nil {
		return err
	}

	// A bad namespace name asks nothing of the registry.
	if err := (client.Namespace{Name: c.String("namespace")}).Check(); err != nil {
		return err
	}
	// The registry's answer is a round trip, the longest wait of a pull
	// that finds every blob in the store: ask first, and meanwhile catch
	// the signals and find the mount.
	type resolved struct {
		desc ocispec.Descriptor
		err  error
	}
	resolving := make(chan resolved, 1)
	resolveCtx, cancelResolve := context.WithCancel(context.Background())
	defer cancelResolve()
	go func() {
		desc, err := repo.Resolve(resolveCtx, object)
		resolving <- resolved{desc, err}
	}()
	// SIGINT/SIGTERM cancel the pull: the blob being written is dropped by
	// the filesystem (its bytes do not match its name), what is complete
	// stays, and the next pull fetches only what is missing. (The first
	// signal.Notify starts a thread of its own: a third of a millisecond
	// the request no longer waits for.)
	ctx, stop := interruptible(c)
	defer stop()
	defer context.AfterFunc(ctx, cancelResolve)()
	ns, err := namespaceOf(c)
	if err != nil {
		return err
	}
	r := <-resolving
	desc := r.desc
	if r.err != nil {
		return resolveError(ctx, name, repo, creds, r.err)
	}
	// Created only once there is something to pull: a typo in the ref or
	// a wrong password leaves the store as it was. (main says a dead
	// daemon as such, for this and every other error.)
	if err := ns.Ensure(); err != nil {
		return err
	}
	progress := newPullProgress(os.Stdout, name, c.Bool("quiet"))
	opts.Observer = progress
	// By digest, which pins what we resolved, without asking again.
	opts.Root = &desc
	_, err = ns.Pull(ctx, repo, desc.Digest.String(), name, opts)
	progress.finish(err == nil)
	switch {
	case err == nil:
		return nil
	case ctx.Err() != nil:
		return errors.Errorf("pull %q: interrupted; what was complete is kept, pull again to fetch the rest", name)
	}
	return errors.Wrapf(transportError(repo, err), "pull %q", name)
}

// openRepository is the registry repository of the normalized reference
// name, with credentials from the Docker config; object is its tag or
// digest.
func openRepository(name string, plainHTTP bool) (repo *remote.Repository, object string, creds credentials.Store, err error) {
	ref, err := registry.ParseReference(name)
	if err != nil {
		return nil, "", nil, errors.Wrapf(err, "reference %q", name)
	}
	object = ref.Reference
	if ref.Registry == "docker.io" {
		ref.Registry = "registry-1.docker.io" // Docker Hub's API lives there
	}
	repo, err = remote.NewRepository(ref.Registry + "/" + ref.Repository)
	if err != nil {
		return nil, "", nil, errors.Wrapf(err, "reference %q", name)
	}
	store, err := credentials.NewStoreFromDocker(credentials.StoreOptions{})
	if err != nil {
		return nil, "", nil, errors.Wrap(err, "reading the Docker config for credentials")
	}
	repo.PlainHTTP = plainHTTP
	repo.Client = &auth.Client{
		Client:     registryHTTPClient(),
		Cache:      auth.NewCache(),
		Credential: credentials.Credential(store),
		ClientID:   "nsfs",
	}
	return repo, object, store, nil
}

// registryHTTPClient retries what oras-go's retry client retries (5xx,
// 429, a reset connection) but gives up on a host that does not answer
// within 10 s, and never retries a refused connection.
func registryHTTPClient() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.DialContext = (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	t.ResponseHeaderTimeout = 60 * time.Second
	return &http.Client{Transport: retry.NewTransport(t)}
}

// resolveError says in one line why name could not be resolved.
func resolveError(ctx context.Context, name string, repo *remote.Repository, creds credentials.Store, err error) error {
	host := repo.Reference.Registry
	var resp *errcode.ErrorResponse
	switch {
	case ctx.Err() != nil:
		return errors.Errorf("failed to resolve reference %q: interrupted", name)
	case errors.Is(err, errdef.ErrNotFound):
		return errors.Errorf("failed to resolve reference %q: not found", name)
	case errors.Is(err, auth.ErrBasicCredentialNotFound) || errors.As(err, &resp) && resp.StatusCode == http.StatusUnauthorized:
		where := "the Docker config"
		if ds, ok := creds.(*credentials.DynamicStore); ok && ds.ConfigPath() != "" {
			where = ds.ConfigPath()
		}
		cred, _ := creds.Get(ctx, credentials.ServerAddressFromHostname(host))
		if cred == auth.EmptyCredential {
			return errors.Errorf("failed to resolve reference %q: %s requires a login, and %s has no credentials for it", name, host, where)
		}
		return errors.Errorf("failed to resolve reference %q: %s refused the credentials from %s (wrong username or password)", name, host, where)
	case errors.As(err, &resp) && resp.StatusCode == http.StatusForbidden:
		return errors.Errorf("failed to resolve reference %q: %s denies access to %s", name, host, repo.Reference.Repository)
	}
	return errors.Wrapf(transportError(repo, err), "failed to resolve reference %q", name)
}

// transportError shortens network errors to what went wrong with which
// host ("cannot reach 127.0.0.1:5000: connection refused").
func transportError(repo *remote.Repository, err error) error {
	host := repo.Reference.Registry
	var opErr *net.OpError
	var dnsErr *net.DNSError
	switch {
	case strings.Contains(err.Error(), "server gave HTTP response to HTTPS client"):
		return errors.Errorf("%s speaks HTTP, not HTTPS: use --plain-http", host)
	case errors.Is(err, syscall.ECONNREFUSED):
		return errors.Errorf("cannot reach %s: connection refused", host)
	case errors.As(err, &dnsErr):
		return errors.Errorf("cannot reach %s: %v", host, dnsErr)
	case errors.As(err, &opErr) && opErr.Op == "dial":
		return errors.Errorf("cannot reach %s: %v", host, opErr.Err)
	}
	return err
}
