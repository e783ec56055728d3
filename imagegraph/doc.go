// Package imagegraph is the one place that knows the graph of an OCI or
// Docker schema 2 image: which media types are manifests and indexes, how
// a manifest or index is parsed (strictly: what nsfs accepts means the
// same to every reader of the bytes), which nodes lie below a node, how
// deep and how large the graph may be, and how a node is read so that its
// bytes are the ones its descriptor names.
//
// It owns:
//
//   - the media types of manifests and indexes (IsManifest, IsIndex,
//     IsDocument) and of layers a registry does not serve
//     (IsNonDistributable);
//   - Parse, the one parser of manifests and indexes: schemaVersion 2, a
//     media type that is a manifest's or an index's (inferred from the
//     document's shape when it has no mediaType field), descriptors with a
//     sha256 digest, a size and a media type, no key twice in an object
//     and no key that differs from a field read only in case;
//   - the children of a node (Successors, and Document.Children once
//     parsed) and the walks below a node: Walker, the one recursion over
//     the graph, whose caller reads the documents by its own rules (a
//     namespace, an archive, documents parsed earlier) while the Walker
//     keeps the order, the depth (MaxIndexDepth) and takes each digest
//     once; and Walk, a Walker that reads with Fetch and visits every
//     place a digest is named;
//   - the limits: MaxDocumentSize, the size of a manifest or index, and
//     MaxIndexDepth, how many indexes may lie above a document that is
//     still read. They are the limits the metadata store enforces when an
//     image is written (it refuses a larger manifest, and claims the blobs
//     below an index no deeper), so that every walk (the listing's sizes,
//     a pull, an import, an export, a check of the store) counts what the
//     store claims;
//   - verified reads (Fetch): a document's bytes are read with oras-go's
//     content.FetchAll, which checks their size and digest.
//
// It knows nothing of where blobs are kept: readers are oras-go
// content.Fetchers. It imports neither bbolt nor the metadata store.
package imagegraph
