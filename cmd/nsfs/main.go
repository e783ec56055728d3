// Command nsfs serves an nsfs store as a filesystem and works on a mounted
// one as ctr does on containerd. Each command lives in its own file
// (mount.go, namespaces.go, images.go, ...) and is listed in commands below.
package main

import (
	"fmt"
	"log"
	"os"
	"strings"

	"github.com/nsfs/nsfs/client"
	"github.com/urfave/cli/v2"
)

// commands are the subcommands, in the order help lists them.
var commands = []*cli.Command{
	mountCommand,
	namespacesCommand,
	imagesCommand,
	contentCommand,
	pullCommand,
	pushCommand,
	fsckCommand,
	gcCommand,
	umountCommand,
}

// globalFlags choose the mount and the namespace every other command
// works on, as ctr's --namespace does.
var globalFlags = []cli.Flag{
	&cli.StringFlag{
		Name:    "mount",
		Usage:   "the nsfs mountpoint `DIR` to work on (default: the fuse.nsfs mount holding the current directory, else the only one)",
		EnvVars: []string{"NSFS_MOUNT"},
	},
	&cli.StringFlag{
		Name:    "namespace",
		Aliases: []string{"n"},
		Usage:   "the namespace `NAME` to work in",
		EnvVars: []string{"NSFS_NAMESPACE", "CONTAINERD_NAMESPACE"},
		Value:   "default",
	},
}

func newApp() *cli.App {
	app := &cli.App{
		Name:     "nsfs",
		Usage:    "container image namespaces as a filesystem",
		Flags:    globalFlags,
		Commands: commands,
		Metadata: map[string]any{},
		// Errors are printed once, by main, as "nsfs: ...".
		ExitErrHandler: func(*cli.Context, error) {},
		OnUsageError:   onUsageError,
		Action:         unknownCommand,
		// Only `nsfs help bogus` gets here (unknownCommand sees the rest);
		// the callback cannot fail, so main reports what it leaves.
		CommandNotFound: func(c *cli.Context, name string) {
			c.App.Metadata[commandNotFoundKey] = unknownCommandError(c, name)
		},
	}
	for _, cmd := range commands {
		setUsageHandlers(cmd)
	}
	return app
}

// commandNotFoundKey is where CommandNotFound leaves its error in the
// app's Metadata.
const commandNotFoundKey = "commandNotFound"

// mountKey is where mountOf leaves the mount it resolved in the app's
// Metadata, for main to name in a DaemonGone message.
const mountKey = "mount"

// setUsageHandlers makes every command below cmd report a bad flag in one
// line (onUsageError) and an unknown subcommand as an error
// (unknownCommand), instead of printing help to stdout.
//
// urfave/cli's own help command, which it adds to every command with
// subcommands once they ran (a second newApp in one process sees it), is
// left alone.
func setUsageHandlers(cmd *cli.Command) {
	if cmd.Name == "help" {
		return
	}
	cmd.OnUsageError = onUsageError
	if len(cmd.Subcommands) > 0 && cmd.Action == nil {
		cmd.Action = unknownCommand
	}
	for _, sub := range cmd.Subcommands {
		setUsageHandlers(sub)
	}
}

// onUsageError says what was wrong with the command line in one line:
//
//	nsfs: images ls: flag provided but not defined: -x (see nsfs images ls --help)
func onUsageError(c *cli.Context, err error, _ bool) error {
	path := commandPath(c)
	if path == c.App.Name {
		return fmt.Errorf("%v (see %s --help)", err, path)
	}
	return fmt.Errorf("%s: %v (see %s --help)", strings.TrimPrefix(path, c.App.Name+" "), err, path)
}

// unknownCommand is the action of the app and of every command that only
// has subcommands: with no argument it shows the help, as urfave/cli
// would; a word that is no subcommand is an error.
//
//	nsfs: unknown command "bogus" (see nsfs --help)
func unknownCommand(c *cli.Context) error {
	if c.NArg() > 0 {
		return unknownCommandError(c, c.Args().First())
	}
	if c.Command == nil || c.Command.HelpName == c.App.HelpName {
		return cli.ShowAppHelp(c)
	}
	return cli.ShowSubcommandHelp(c)
}

// unknownCommandError says that name is no subcommand of the command c
// runs.
func unknownCommandError(c *cli.Context, name string) error {
	path := commandPath(c)
	if path == c.App.Name {
		return fmt.Errorf("unknown command %q (see %s --help)", name, path)
	}
	return fmt.Errorf("%s: unknown command %q (see %s --help)", strings.TrimPrefix(path, c.App.Name+" "), name, path)
}

// commandPath is the command line up to the command c runs, with the
// names as the user typed them ("nsfs images ls", not "nsfs images
// list"): each context's parent holds the name it was called by as its
// first argument.
func commandPath(c *cli.Context) string {
	lineage := c.Lineage()
	var names []string
	for i := 0; i+1 < len(lineage); i++ {
		parent := lineage[i+1]
		if parent.Command == nil && parent.App == nil {
			break
		}
		name := parent.Args().First()
		if name == "" {
			break
		}
		names = append(names, name)
	}
	path := []string{c.App.Name}
	for i := len(names) - 1; i >= 0; i-- {
		path = append(path, names[i])
	}
	return strings.Join(path, " ")
}

// mountOf resolves the mount a command works on (--mount, NSFS_MOUNT, the
// one fuse.nsfs mount).
func mountOf(c *cli.Context) (client.Mount, error) {
	m, err := client.FindMount(c.String("mount"))
	if err == nil && c.App.Metadata != nil {
		c.App.Metadata[mountKey] = m.Dir
	}
	return m, err
}

// namespaceOf resolves the mount and the namespace a command works on
// (-n, NSFS_NAMESPACE, CONTAINERD_NAMESPACE, default).
func namespaceOf(c *cli.Context) (client.Namespace, error) {
	m, err := mountOf(c)
	if err != nil {
		return client.Namespace{}, err
	}
	return m.Namespace(c.String("namespace")), nil
}

func main() {
	log.SetFlags(0)
	log.SetPrefix("nsfs: ")
	app := newApp()
	err := app.Run(os.Args)
	if err == nil {
		err, _ = app.Metadata[commandNotFoundKey].(error)
	}
	if err != nil {
		// A file operation under the mount that found its daemon dead
		// (ENOTCONN, ECONNABORTED) says so, and how to recover.
		if dir, ok := app.Metadata[mountKey].(string); ok {
			err = client.DaemonGone(err, dir)
		}
		fmt.Fprintf(os.Stderr, "nsfs: %v%s\n", err, remedy(err))
		os.Exit(1)
	}
}
