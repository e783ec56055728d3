package metadata

import (
	"time"

	"github.com/nsfs/nsfs/blobs"
	"github.com/opencontainers/go-digest"
	bolt "go.etcd.io/bbolt"
)

// Sharing is the content-sharing policy chosen at mount (DESIGN.md,
// "Content sharing").
type Sharing string

const (
	// SharingShared: a namespace can see every blob the store holds.
	SharingShared Sharing = "shared"
	// SharingIsolated: a namespace sees what it holds and what namespaces
	// labelled containerd.io/namespace.shareable=true hold.
	SharingIsolated Sharing = "isolated"
)

// ShareableLabel marks a namespace whose blobs every namespace can see
// under SharingIsolated (containerd's label).
const ShareableLabel = "containerd.io/namespace.shareable"

// Options configure a DB.
type Options struct {
	Sharing Sharing // default SharingShared
	// LockTimeout bounds the wait for the bbolt file lock; a store already
	// open elsewhere gives ErrLocked naming the root. Default 500ms.
	LockTimeout time.Duration
	// OnBlobReleased, if set, is called after a commit by which namespace
	// ns stopped holding blob d (image removed or replaced, blob removed).
	// fs/ uses it to invalidate the kernel's cache. It must not block and
	// must not call back into the DB synchronously.
	OnBlobReleased func(ns string, d digest.Digest)
}

// DB is an nsfs store: the bbolt metadata file <root>/meta.db plus the
// shared blob directory. All mutations are single bbolt transactions; every
// rule (emptiness, visibility, references) is checked inside the
// transaction that mutates.
type DB struct {
	root  string
	opts  Options
	bolt  *bolt.DB
	blobs *blobs.Store
}

// Open opens (creating if needed) the store at root.
func Open(root string, opts Options) (*DB, error) { panic("not implemented") }

// Close closes the bbolt file.
func (db *DB) Close() error { panic("not implemented") }

// Root is the store's directory.
func (db *DB) Root() string { return db.root }

// Sharing is the policy in force.
func (db *DB) Sharing() Sharing { return db.opts.Sharing }
