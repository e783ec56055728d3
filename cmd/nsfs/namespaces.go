package main

import (
	"fmt"

	"github.com/nsfs/nsfs/client"
	"github.com/nsfs/nsfs/metadata"
	"github.com/urfave/cli/v2"
)

// namespacesCommand: create, ls, rm, label, as `ctr namespaces`.
var namespacesCommand = &cli.Command{
	Name:    "namespaces",
	Aliases: []string{"namespace", "ns"},
	Usage:   "manage namespaces",
	Subcommands: []*cli.Command{
		namespacesCreateCommand,
		namespacesListCommand,
		namespacesRemoveCommand,
		namespacesLabelCommand,
		namespacesQuotaCommand,
	},
}

var namespacesCreateCommand = &cli.Command{
	Name:      "create",
	Aliases:   []string{"c"},
	Usage:     "create a namespace (mkdir ns/NAME), with labels",
	ArgsUsage: "NAME [KEY=VALUE...]",
	Description: `A bare KEY means KEY=true.

$ nsfs namespaces create foo team=infra pinned`,
	Action: namespaceLabelsAction(client.Mount.CreateNamespace),
}

// namespaceLabelsAction is the Action of a command whose arguments are
// NAME [KEY=VALUE...] (create, label): it parses them, finds the mount and
// hands both to do.
func namespaceLabelsAction(do func(m client.Mount, name string, labels map[string]string) error) cli.ActionFunc {
	return func(c *cli.Context) error {
		if c.NArg() < 1 {
			return usageError(c, "a namespace NAME is required")
		}
		labels, err := parseLabels(c.Args().Tail())
		if err != nil {
			return err
		}
		m, err := mountOf(c)
		if err != nil {
			return err
		}
		return do(m, c.Args().First(), labels)
	}
}

var namespacesListCommand = &cli.Command{
	Name:    "list",
	Aliases: []string{"ls"},
	Usage:   "list namespaces with their owner, usage, quota and labels",
	Description: `HELD is the bytes of the blobs the namespace holds, each counted once;
ONLY the bytes no other namespace holds (what removing it would free);
QUOTA its quota (trusted.nsfs.quota), "-" for none. Only root can read
these three: for other users they show "?", as do the LABELS of a
namespace whose mode does not let the caller read it.`,
	ArgsUsage: " ",
	Flags: []cli.Flag{
		&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "print only the names"},
	},
	Action: func(c *cli.Context) error {
		if c.NArg() > 0 {
			return usageError(c, "no arguments are taken")
		}
		m, err := mountOf(c)
		if err != nil {
			return err
		}
		namespaces, err := m.Namespaces()
		if err != nil {
			return err
		}
		out := c.App.Writer
		if c.Bool("quiet") {
			for _, ns := range namespaces {
				fmt.Fprintln(out, ns.Name)
			}
			return nil
		}
		tw := newTable(out)
		fmt.Fprintln(tw, "NAME\tOWNER\tHELD\tONLY\tQUOTA\tLABELS\t")
		for _, ns := range namespaces {
			labels := joinLabels(ns.Labels)
			if ns.LabelsDenied {
				labels = "?"
			}
			if ns.LabelsErr != nil {
				labels = "?"
				fmt.Fprintf(c.App.ErrWriter, "nsfs: %v\n", ns.LabelsErr)
			}
			held, only, quota := tenancyColumns(ns.Tenancy)
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t\n", ns.Name, ns.Owner, held, only, quota, labels)
		}
		return tw.Flush()
	},
}

// tenancyColumns are the HELD, ONLY and QUOTA columns: "?" where the
// caller may not read them (only root can), "-" for no quota.
func tenancyColumns(t client.Tenancy) (held, only, quota string) {
	if !t.Known {
		return "?", "?", "?"
	}
	quota = "-"
	if t.Quota >= 0 {
		quota = formatBytes(t.Quota)
	}
	return formatBytes(t.Held), formatBytes(t.Only), quota
}

var namespacesRemoveCommand = &cli.Command{
	Name:      "remove",
	Aliases:   []string{"rm"},
	Usage:     "remove empty namespaces (rmdir ns/NAME)",
	ArgsUsage: "NAME...",
	Description: `Each removed name is printed. A namespace that still has images or
blobs is refused; the others are still removed, and the command exits 1.`,
	Action: func(c *cli.Context) error {
		if c.NArg() < 1 {
			return usageError(c, "at least one namespace NAME is required")
		}
		m, err := mountOf(c)
		if err != nil {
			return err
		}
		failed := failures{w: c.App.ErrWriter}
		for _, name := range c.Args().Slice() {
			if err := m.RemoveNamespace(name); err != nil {
				failed.add(fmt.Errorf("unable to delete %s: %w", name, err))
				continue
			}
			fmt.Fprintln(c.App.Writer, name)
		}
		return failed.err()
	},
}

var namespacesLabelCommand = &cli.Command{
	Name:      "label",
	Usage:     "set and clear the labels of a namespace (setfattr)",
	ArgsUsage: "NAME [KEY=VALUE...]",
	Description: `A bare KEY means KEY=true; KEY= removes the label.

$ nsfs namespaces label foo team=infra old=`,
	Action: namespaceLabelsAction(func(m client.Mount, name string, labels map[string]string) error {
		return m.Namespace(name).SetLabels(labels)
	}),
}

var namespacesQuotaCommand = &cli.Command{
	Name:      "quota",
	Usage:     "set or remove the quota of a namespace (root; trusted.nsfs.quota)",
	ArgsUsage: "NAME SIZE|none",
	Description: `SIZE is bytes, or a number with K, M, G or T (powers of 1024).
A write that would take the namespace past it fails with EDQUOT; a quota
below what the namespace holds deletes nothing.

$ nsfs namespaces quota bob 10G`,
	Action: func(c *cli.Context) error {
		if c.NArg() != 2 {
			return usageError(c, "a namespace NAME and a SIZE (or none) are required")
		}
		bytes := int64(-1)
		if size := c.Args().Get(1); size != "none" {
			var err error
			if bytes, err = metadata.ParseSize(size); err != nil {
				return fmt.Errorf("quota %q: %v", size, err)
			}
		}
		m, err := mountOf(c)
		if err != nil {
			return err
		}
		return m.Namespace(c.Args().First()).SetQuota(bytes)
	},
}
