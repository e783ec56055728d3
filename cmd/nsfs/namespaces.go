package main

import "github.com/urfave/cli/v2"

// namespacesCommand: create, ls, rm, label. (Being written.)
var namespacesCommand = &cli.Command{
	Name:    "namespaces",
	Aliases: []string{"namespace", "ns"},
	Usage:   "manage namespaces",
}
