package metadata

import (
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/opencontainers/go-digest"
	"github.com/pkg/errors"
	bolt "go.etcd.io/bbolt"
)

// Concurrent writers share durable commits: a write that finds no commit
// in progress commits at once, alone; the writes that arrive while a
// commit runs wait for it and then commit together, in one transaction
// and one fsync (group commit). This is bbolt's DB.Batch without its
// timer: Batch holds every call, even a lone one, for up to
// MaxBatchDelay (10 ms) to gather a batch, which would make a lone mkdir
// 50 times slower; here the commit in progress is the delay.
//
// As with Batch, a function may run more than once, so it must only
// change the transaction and variables it sets afresh on every run; and
// when a function fails, the group's transaction is rolled back, the
// others run again without it, and it runs again alone, so that the error
// it returns is its own and not an artefact of the others' writes.
type batcher struct {
	mu      sync.Mutex
	pending []*batchCall
	leading bool // a goroutine is committing a group

	commits atomic.Uint64 // transactions groups committed (tests)
}

type batchCall struct {
	fn   func(*bolt.Tx) error
	done chan error
}

// maxBatch bounds how many writes share one transaction.
const maxBatch = 1000

// errRunAlone tells a caller that its function failed in a group and must
// run again in a transaction of its own.
var errRunAlone = errors.New("run alone")

// batch runs fn in a write transaction that may be shared with other
// callers' functions and returns once it is durably committed (or fn's
// error). See batcher for what fn must allow.
func (db *DB) batch(fn func(*bolt.Tx) error) error {
	if db.reserveShort.Load() {
		db.restoreReserve() // space may have been freed outside the store
	}
	if db.commitForTests != nil {
		return db.commitForTests(fn)
	}
	c := &batchCall{fn: fn, done: make(chan error, 1)}
	b := &db.batcher
	b.mu.Lock()
	b.pending = append(b.pending, c)
	lead := !b.leading
	b.leading = true
	b.mu.Unlock()
	if lead {
		db.leadGroup()
	}
	if err := <-c.done; err != errRunAlone {
		return err
	}
	// Guarded like the group's commit: a panic of bbolt's on a damaged
	// page must reach the caller as an error, so that its locks (content
	// stripes, fs/'s name locks) are released on its error path.
	// fn's own panic still reaches its caller as a panic.
	var own *batchPanic
	err := guarded(func() error {
		return db.bolt.Update(func(tx *bolt.Tx) error {
			err := callSafely(fn, tx)
			if p, ok := err.(batchPanic); ok {
				own = &p
			}
			return err
		})
	})
	if own != nil {
		panic(own.value)
	}
	return err
}

// leadGroup commits the pending calls (up to maxBatch) as one group, then
// hands the lead to a new goroutine if more are waiting, so that the
// leader's own caller returns after one commit.
func (db *DB) leadGroup() {
	b := &db.batcher
	b.mu.Lock()
	calls := b.pending
	if len(calls) > maxBatch {
		calls = calls[:maxBatch:maxBatch]
	}
	b.pending = b.pending[len(calls):]
	b.mu.Unlock()

	db.commitGroup(calls)

	b.mu.Lock()
	if len(b.pending) == 0 {
		b.pending = nil
		b.leading = false
		b.mu.Unlock()
		return
	}
	b.mu.Unlock()
	go db.leadGroup()
}

// commitGroup runs calls in one transaction. A call that fails is taken
// out and told to run alone (unless it ran first, on exactly the state
// it would see alone: its error stands), and the rest run again.
func (db *DB) commitGroup(calls []*batchCall) {
	for len(calls) > 0 {
		failed := -1
		var failure error
		// Guarded: a panic in bbolt's commit (a damaged page) fails this
		// group instead of leaving the batcher led by nobody.
		err := guarded(func() error {
			return db.bolt.Update(func(tx *bolt.Tx) error {
				for i, c := range calls {
					if err := callSafely(c.fn, tx); err != nil {
						failed, failure = i, err
						return err
					}
				}
				return nil
			})
		})
		if failed < 0 {
			db.batcher.commits.Add(1)
			for _, c := range calls {
				c.done <- err
			}
			return
		}
		if _, panicked := failure.(batchPanic); failed == 0 && !panicked {
			calls[0].done <- failure
		} else {
			calls[failed].done <- errRunAlone
		}
		calls = append(calls[:failed:failed], calls[failed+1:]...)
	}
}

// callSafely turns a panic in fn into an error, so that one caller's bug
// cannot take the leader (another caller) down; the caller then runs fn
// alone, in its own goroutine, where the panic happens again and is its
// own.
func callSafely(fn func(*bolt.Tx) error, tx *bolt.Tx) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = batchPanic{p}
		}
	}()
	return fn(tx)
}

// batchPanic is a panic callSafely caught.
type batchPanic struct{ value any }

func (p batchPanic) Error() string { return fmt.Sprintf("panic in a batched write: %v", p.value) }

// contentLocks serialise, per digest, [publish a blob file + commit the
// record that holds it] against [see that no record names the file +
// delete it] (doc.go, "Files and records"). Striped, so that writers of
// different blobs commit together.
const contentLockStripes = 64

// lockContent locks blob d's stripe and returns the unlock.
func (db *DB) lockContent(d digest.Digest) func() {
	mu := &db.contentLocks[contentStripe(d)]
	mu.Lock()
	return mu.Unlock
}

// contentStripe is the index of d's content lock.
func contentStripe(d digest.Digest) int {
	var h uint32 = 2166136261 // FNV-1a
	for i := 0; i < len(d); i++ {
		h = (h ^ uint32(d[i])) * 16777619
	}
	return int(h % contentLockStripes)
}
