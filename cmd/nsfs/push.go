package main

import (
	"context"
	"fmt"
	"net/http"
	"os"

	"github.com/nsfs/nsfs/client"
	"github.com/pkg/errors"
	"github.com/urfave/cli/v2"
	"oras.land/oras-go/v2/registry/remote/auth"
	"oras.land/oras-go/v2/registry/remote/credentials"
	"oras.land/oras-go/v2/registry/remote/errcode"
)

// pushCommand sends an image of the namespace to a registry, as `ctr
// push` does; it is both `nsfs push` and `nsfs images push`.
//
//	$ nsfs push --plain-http 127.0.0.1:5000/library/app:v1
//	config-sha256:f1feefb7…74f4dbdf: done  225.0 B
//	layer-sha256:80a2ba83…0925d461: exists  2.0 MiB
//	manifest-sha256:2fc05802…183105ae: done  672.0 B
//	elapsed: 0.1 s  total: 897.0 B (64.6 KiB/s)
//
// (digests shortened here; the command prints them whole).
var pushCommand = &cli.Command{
	Name:      "push",
	Usage:     "send an image of the namespace to a registry",
	ArgsUsage: "REF [DEST]",
	Description: `Sends image REF of the namespace to the registry DEST names (default: REF
itself, a Docker reference): the blobs the registry lacks, then the manifest or
index, which keeps its digest. Blobs the registry has are not sent. Of an index,
the platforms the namespace holds are pushed; those it lacks are named on stderr.
Credentials come from the Docker config ($DOCKER_CONFIG/config.json, else
~/.docker/config.json).`,
	Flags: []cli.Flag{
		&cli.BoolFlag{Name: "plain-http", Usage: "talk to the registry over HTTP, without TLS"},
		&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "print nothing but errors"},
	},
	Action: pushAction,
}

// imagesPushCommand is `nsfs images push` (see imagesPullCommand for why
// it is a copy).
var imagesPushCommand = func() *cli.Command {
	c := *pushCommand
	return &c
}()

func pushAction(c *cli.Context) error {
	if c.NArg() < 1 || c.NArg() > 2 {
		return usageError(c, "REF and at most one DEST are required")
	}
	ref := c.Args().Get(0)
	dest := ref
	if c.NArg() == 2 {
		dest = c.Args().Get(1)
	}
	name, err := client.NormalizeDockerRef(dest)
	if err != nil {
		return err
	}
	ns, err := namespaceOf(c)
	if err != nil {
		return err
	}
	if err := ns.CheckExists(); err != nil {
		return err
	}
	ref, err = localRef(ns, ref)
	if err != nil {
		return err
	}
	repo, object, creds, err := openRepository(name, c.Bool("plain-http"))
	if err != nil {
		return err
	}
	ctx, stop := interruptible(c)
	defer stop()

	progress := newPullProgress(os.Stdout, name, c.Bool("quiet"))
	progress.sending = "uploading"
	res, err := ns.Push(ctx, ref, repo, object, client.PushOptions{Observer: progress})
	progress.finish(err == nil)
	for _, d := range res.Lacking {
		platform := ""
		if d.Platform != nil {
			platform = " (" + client.FormatPlatform(*d.Platform) + ")"
		}
		fmt.Fprintf(os.Stderr, "nsfs: push %q: not sent: manifest %s%s, which namespace %q does not hold whole\n", name, d.Digest, platform, ns.Name)
	}
	switch {
	case err == nil:
		return nil
	case ctx.Err() != nil:
		return errors.Errorf("push %q: interrupted; push again to send the rest", name)
	case errors.Is(err, auth.ErrBasicCredentialNotFound) || errors.As(err, new(*errcode.ErrorResponse)) && isUnauthorized(err):
		return loginError(ctx, name, repo.Reference.Registry, creds, err)
	case len(res.Lacking) > 0:
		return errors.Wrapf(transportError(repo, err), "push %q: the index names %d manifest(s) namespace %q does not hold, and a registry may refuse it for them (pull REF --all-platforms first)", name, len(res.Lacking), ns.Name)
	}
	return errors.Wrapf(transportError(repo, err), "push %q", name)
}

// localRef is the image of the namespace that REF names: the ref as
// written, else its normalized Docker form ("redis" is stored by pull as
// docker.io/library/redis:latest).
func localRef(ns client.Namespace, ref string) (string, error) {
	candidates := []string{ref}
	if normalized, err := client.NormalizeDockerRef(ref); err == nil && normalized != ref {
		candidates = append(candidates, normalized)
	}
	for _, r := range candidates {
		path, err := ns.RefPath(r)
		if err != nil {
			continue
		}
		if st, err := os.Stat(path); err == nil && st.Mode().IsRegular() {
			return r, nil
		}
	}
	return "", errors.Errorf("no image %q in namespace %q", ref, ns.Name)
}

// loginError says, as pull does, why the registry wants other
// credentials: which Docker config was read, and whether it had any.
func loginError(ctx context.Context, name, host string, creds credentials.Store, err error) error {
	where := "the Docker config"
	if ds, ok := creds.(*credentials.DynamicStore); ok && ds.ConfigPath() != "" {
		where = ds.ConfigPath()
	}
	if cred, _ := creds.Get(ctx, credentials.ServerAddressFromHostname(host)); cred == auth.EmptyCredential {
		return errors.Errorf("push %q: %s requires a login, and %s has no credentials for it", name, host, where)
	}
	return errors.Errorf("push %q: %s refused the credentials from %s (wrong username or password)", name, host, where)
}

// isUnauthorized: the registry answered 401.
func isUnauthorized(err error) bool {
	var resp *errcode.ErrorResponse
	return errors.As(err, &resp) && resp.StatusCode == http.StatusUnauthorized
}
