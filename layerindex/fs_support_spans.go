package layerindex

// Span is the stretch of a gzip layer's uncompressed stream that a read
// at off decompresses: from the checkpoint at or before off (or the
// stream's start) to the next (or the end). ok is false for a layer read
// otherwise (plain tar where it lies, zstd from its start).
//
// For the filesystem, which decompresses the span after the one a
// reader goes through in the layer's order before it is asked for.
func (idx *Index) Span(off int64) (start, end int64, ok bool) {
	if idx.Compression != Gzip || off < 0 || off >= idx.TarSize {
		return 0, 0, false
	}
	start, end = 0, idx.TarSize
	if cp := idx.checkpointBefore(off); cp != nil {
		start = cp.Out
	}
	if i := idx.checkpointAfter(start); i >= 0 {
		end = idx.Checkpoints[i].Out
	}
	return start, end, true
}
