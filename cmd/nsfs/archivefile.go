package main

import (
	"bufio"
	"context"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/nsfs/nsfs/client"
	"github.com/pkg/errors"
)

// The files of `nsfs images import` and `nsfs images export`: "-" is
// stdin or stdout, and an export is written to a temporary file beside
// its name and renamed, so that a failed or interrupted export leaves no
// partial file. Errors do not name the file (the command does: "export
// x.tar: no such file or directory"), nor the temporary file, which the
// user never named.

// importArchive is Import from the file at name, or from stdin when name
// is "-".
func importArchive(ctx context.Context, ns client.Namespace, name string, opts client.ImportOptions) (client.ImportResult, error) {
	if name == "-" {
		return ns.Import(ctx, os.Stdin, opts)
	}
	f, err := os.Open(name)
	if err != nil {
		return client.ImportResult{}, unwrapPath(err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.IsDir() {
		return client.ImportResult{}, errors.New("is a directory")
	}
	return ns.Import(ctx, f, opts)
}

// exportArchive is Export into the file at name, whole or not at all, or
// to stdout when name is "-".
func exportArchive(ctx context.Context, ns client.Namespace, name string, refs []string, opts client.ExportOptions) error {
	if name == "-" {
		return ns.Export(ctx, os.Stdout, refs, opts)
	}
	return writeFileWhole(name, func(w io.Writer) error { return ns.Export(ctx, w, refs, opts) })
}

// writeFileWhole writes the file at name with write: to a temporary file
// beside it, made 0644 and renamed over name once write succeeded.
func writeFileWhole(name string, write func(io.Writer) error) error {
	if fi, err := os.Stat(name); err == nil && fi.IsDir() {
		return errors.New("is a directory")
	}
	dir, base := filepath.Split(name)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return unwrapPath(err)
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	bw := bufio.NewWriterSize(writeErrorsOf{tmp}, 1<<20)
	if err := write(bw); err != nil {
		tmp.Close()
		return err
	}
	if err := bw.Flush(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return errors.Wrap(unwrapPath(err), "writing the file")
	}
	if err := tmp.Close(); err != nil {
		return errors.Wrap(unwrapPath(err), "writing the file")
	}
	if err := os.Rename(tmp.Name(), name); err != nil {
		return errors.Wrap(unwrapPath(err), "writing the file")
	}
	return nil
}

// writeErrorsOf says "writing the file: no space left on device" for a
// failed write, without the temporary file's name.
type writeErrorsOf struct{ f *os.File }

func (w writeErrorsOf) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	if err != nil {
		err = errors.Wrap(unwrapPath(err), "writing the file")
	}
	return n, err
}

// unwrapPath is the error of a file operation without the path and the
// operation (*fs.PathError, *os.LinkError), for a message that names the
// file itself: the path may be a temporary file the user never named.
func unwrapPath(err error) error {
	var pe *fs.PathError
	var le *os.LinkError
	switch {
	case errors.As(err, &pe):
		return pe.Err
	case errors.As(err, &le):
		return le.Err
	}
	return err
}
