package layerindex

import (
	"bytes"
	"io"
	"testing"
)

// Inflating from each checkpoint gives the bytes a whole gunzip gives
// there.
func TestEveryCheckpointResumes(t *testing.T) {
	tarBytes, _ := testTar(t, 60)
	blob := gz(t, tarBytes)
	idx := build(t, blob, 1<<20)
	for i, cp := range idx.Checkpoints {
		s, err := resumeGzip(bytes.NewReader(blob), int64(len(blob)), &cp)
		if err != nil {
			t.Fatal(err)
		}
		got := make([]byte, 100000)
		n, err := io.ReadFull(s, got)
		want := tarBytes[cp.Out:]
		if len(want) > n {
			want = want[:n]
		}
		if !bytes.Equal(got[:n], want) {
			j := 0
			for j < n && got[j] == want[j] {
				j++
			}
			t.Errorf("checkpoint %d (in %d bits %d out %d window %d): differs at %d (read %d, %v)", i, cp.In, cp.Bits, cp.Out, len(cp.Window), j, n, err)
		}
	}
}
