// Package layerindex reads the files inside image layers without
// unpacking them: a table of a layer's tar entries (Build), the tree a
// container sees when layers are applied in order (Merge: whiteouts,
// opaque directories, hard links), and reads of one file's bytes from
// the compressed blob (Reader). A layer's table is built in one
// streaming pass over the blob, verified against its digest, and kept in
// a Cache on disk keyed by the digest, so every namespace and image that
// has the layer shares it.
//
// It knows nothing of FUSE, namespaces or the metadata store: blobs come
// in as readers the caller opened, and manifests are read through
// imagegraph.
package layerindex
