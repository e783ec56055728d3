package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/urfave/cli/v2"
)

// interruptible is the command's context, canceled by the first SIGINT or
// SIGTERM, so that a command cleans up (a temporary file, a blob half
// written) and says in one line that it was interrupted, then exits 1,
// instead of dying with 130 and leaving things behind. After the first
// signal the default handling is back: a second Ctrl-C kills at once.
// stop must be called when the command is done.
//
//	ctx, stop := interruptible(c)
//	defer stop()
//	if err := work(ctx); err != nil {
//		if ctx.Err() != nil {
//			return fmt.Errorf("export %s: interrupted", file)
//		}
//		return err
//	}
func interruptible(c *cli.Context) (context.Context, context.CancelFunc) {
	parent := context.Background()
	if c != nil && c.Context != nil {
		parent = c.Context
	}
	ctx, stop := signal.NotifyContext(parent, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop()
	}()
	return ctx, stop
}
