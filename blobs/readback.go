package blobs

import (
	"io"

	"github.com/pkg/errors"
)

// Written reads back the bytes written so far, if there are at most max
// of them (an error otherwise): a temporary ingest that becomes a file of the
// store rather than a blob (an OCI layout's index.json, written to a
// temporary name and renamed) is read, never committed.
func (w *Writer) Written(max int64) ([]byte, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.file == nil {
		return nil, errors.New("ingest is closed")
	}
	if w.size > max {
		return nil, errors.Errorf("ingest of %d bytes is over the limit of %d", w.size, max)
	}
	data := make([]byte, w.size)
	if _, err := w.file.ReadAt(data, 0); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return data, nil
}
