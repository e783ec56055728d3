package metadata

// Fuzz targets for what the disk hands to metadata: the image records
// read back from bbolt. (The naming rules are fuzzed in names/, the
// manifest parser in imagegraph/.) Each checks properties, not only the absence of a panic. The seed
// corpus is in testdata/fuzz/<Target>/; `make fuzz` runs each for a while.

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// FuzzDecodeImageRecord: bytes read back from bbolt (perhaps damaged)
// decode or are refused as corrupt, never panic; what decodes encodes to
// a record that decodes the same.
func FuzzDecodeImageRecord(f *testing.F) {
	good := imageRecord{id: 7, createdAt: time.Unix(1, 2).UTC(), updatedAt: time.Unix(3, 4).UTC(),
		target: ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.Digest("sha256:" + strings.Repeat("e", 64)), Size: 477}}
	f.Add(good.encode())
	f.Add(good.encode()[:20])
	f.Add([]byte{imageRecordVersion})
	f.Add(append([]byte{imageRecordVersion}, make([]byte, 32+2)...))
	f.Add(append(append([]byte{imageRecordVersion}, make([]byte, 32)...), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodeImageRecord(b)
		if err != nil {
			if !strings.Contains(err.Error(), "image record") {
				t.Fatalf("decodeImageRecord error %q does not say what is corrupt", err)
			}
			return
		}
		again, err := decodeImageRecord(r.encode())
		if err != nil {
			t.Fatalf("a decoded record does not decode once encoded: %v", err)
		}
		if !reflect.DeepEqual(again, r) {
			t.Fatalf("decode(encode(r)) = %+v, r = %+v", again, r)
		}
	})
}

// FuzzImageRecordRoundTrip: every record encodes to bytes that decode to
// it.
func FuzzImageRecordRoundTrip(f *testing.F) {
	f.Add(uint64(1), int64(0), int64(1), int64(477), ocispec.MediaTypeImageManifest, "sha256:"+strings.Repeat("e", 64))
	f.Add(uint64(1<<63), int64(-1), int64(1<<62), int64(-5), "", "")
	f.Fuzz(func(t *testing.T, id uint64, created, updated, size int64, mediaType, dg string) {
		r := imageRecord{id: id, createdAt: time.Unix(0, created).UTC(), updatedAt: time.Unix(0, updated).UTC(),
			target: ocispec.Descriptor{MediaType: mediaType, Digest: digest.Digest(dg), Size: size}}
		got, err := decodeImageRecord(r.encode())
		if err != nil {
			t.Fatalf("decode(encode(%+v)): %v", r, err)
		}
		if !reflect.DeepEqual(got, r) {
			t.Fatalf("decode(encode(r)) = %+v, r = %+v", got, r)
		}
	})
}
