package metadata

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pkg/errors"
	bolt "go.etcd.io/bbolt"
)

// waitPending polls until n calls wait for the next group.
func waitPending(t *testing.T, db *DB, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		db.batcher.mu.Lock()
		got := len(db.batcher.pending)
		db.batcher.mu.Unlock()
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d calls pending, want %d", got, n)
		}
		time.Sleep(time.Millisecond)
	}
}

func putKey(tx *bolt.Tx, k string) error {
	b, err := tx.CreateBucketIfNotExists([]byte("batchtest"))
	if err != nil {
		return err
	}
	return b.Put([]byte(k), []byte("v"))
}

// The writes that arrive while a commit runs commit together, in one
// transaction; one that fails there gets its own error, and the others
// commit without its writes.
func TestBatchGroupsWritesAndIsolatesAFailure(t *testing.T) {
	db := openTestDB(t, Options{})
	start := db.batcher.commits.Load()

	release, leader := holdLeader(db, func(tx *bolt.Tx) error { return putKey(tx, "leader") })

	const n = 8
	errBad := errors.New("bad write")
	var mu sync.Mutex
	runs := map[int]int{}
	results := make([]error, n)
	var wg sync.WaitGroup
	// Call 3 arrives last: the first of a group runs on exactly the state
	// it would see alone, so its error would stand without a second run.
	order := []int{0, 1, 2, 4, 5, 6, 7, 3}
	for k, i := range order {
		if i == 3 {
			waitPending(t, db, k)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = db.batch(func(tx *bolt.Tx) error {
				mu.Lock()
				runs[i]++
				mu.Unlock()
				if err := putKey(tx, fmt.Sprint(i)); err != nil {
					return err
				}
				if i == 3 {
					return errors.Wrap(errBad, "call 3")
				}
				return nil
			})
		}()
	}
	waitPending(t, db, n)
	release()
	if err := <-leader; err != nil {
		t.Fatal(err)
	}
	wg.Wait()

	for i, err := range results {
		if i == 3 {
			if !errors.Is(err, errBad) || err.Error() != "call 3: bad write" {
				t.Fatalf("the failing call got %v", err)
			}
		} else if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	// The leader alone, then the eight: one group, rolled back once for
	// call 3, committed without it; call 3 ran again alone and failed.
	if got := db.batcher.commits.Load() - start; got != 2 {
		t.Fatalf("%d group commits, want 2 (the leader's, then all the others')", got)
	}
	if runs[3] != 2 {
		t.Fatalf("the failing call ran %d times, want 2 (in the group, then alone)", runs[3])
	}
	err := db.bolt.View(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("batchtest"))
		for i := 0; i < n; i++ {
			if got := b.Get([]byte(fmt.Sprint(i))) != nil; got != (i != 3) {
				t.Errorf("key %d committed: %v", i, got)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// Of concurrent creations of one namespace exactly one succeeds, the
// others get ErrExists, also when they share a group.
func TestBatchRacingCreations(t *testing.T) {
	db := openTestDB(t, Options{})
	for round := 0; round < 20; round++ {
		name := fmt.Sprintf("ns%d", round)
		const n = 8
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, errs[i] = db.Namespaces().Create(name, nil)
			}()
		}
		wg.Wait()
		ok := 0
		for _, err := range errs {
			switch {
			case err == nil:
				ok++
			case !IsExists(err):
				t.Fatalf("NamespaceStore.Create: %v", err)
			}
		}
		if ok != 1 {
			t.Fatalf("round %d: %d creations of %s succeeded", round, ok, name)
		}
	}
	checkInvariants(t, db)
}

// A function that panics in a group does not take the leader down: the
// others commit, and the panic happens again in its own caller.
func TestBatchPanicStaysWithItsCaller(t *testing.T) {
	db := openTestDB(t, Options{})
	release, _ := holdLeader(db, func(*bolt.Tx) error { return nil })
	panicked := make(chan any, 1)
	other := make(chan error, 1)
	go func() {
		defer func() { panicked <- recover() }()
		db.batch(func(tx *bolt.Tx) error { panic("boom") })
	}()
	waitPending(t, db, 1)
	go func() { other <- db.batch(func(tx *bolt.Tx) error { return putKey(tx, "other") }) }()
	waitPending(t, db, 2)
	release()
	if p := <-panicked; p != "boom" {
		t.Fatalf("the caller's recover got %v, want its own panic", p)
	}
	if err := <-other; err != nil {
		t.Fatalf("the other call: %v", err)
	}
}

// holdLeader starts a group commit whose leader runs fn and then waits,
// its commit in progress, until release is called: the writes made
// meanwhile gather into the next group. leader receives its result.
func holdLeader(db *DB, fn func(*bolt.Tx) error) (release func(), leader <-chan error) {
	hold, held := make(chan struct{}), make(chan struct{})
	result := make(chan error, 1)
	go func() {
		result <- db.batch(func(tx *bolt.Tx) error {
			select {
			case <-held:
			default:
				close(held) // fn may run again, alone, after a failure
			}
			<-hold
			return fn(tx)
		})
	}()
	<-held
	return func() { close(hold) }, result
}

// commitModes are the ways a write can commit, compared by the parallel
// benchmarks: one fsync per write, bbolt's Batch (it waits up to 10 ms to
// gather a batch), and nsfs's group commit (batch.go).
var commitModes = []struct {
	name string
	mode commitMode
}{{"update", commitEach}, {"bbolt-batch", commitBoltBatch}, {"group-commit", groupCommit}}

// BenchmarkParallelCreateNamespace creates namespaces from 8 goroutines
// (mkdir ns/<name> from concurrent clients), and from one.
func BenchmarkParallelCreateNamespace(b *testing.B) {
	for _, m := range commitModes {
		for _, par := range []int{1, 8} {
			b.Run(fmt.Sprintf("%s/writers=%d", m.name, par), func(b *testing.B) {
				db := openTestDB(b, Options{})
				db.setCommitMode(m.mode)
				var next atomic.Int64
				b.SetParallelism((par + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
				if par == 1 {
					for b.Loop() {
						if _, err := db.Namespaces().Create(fmt.Sprintf("ns%d", next.Add(1)), nil); err != nil {
							b.Fatal(err)
						}
					}
					return
				}
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if _, err := db.Namespaces().Create(fmt.Sprintf("ns%d", next.Add(1)), nil); err != nil {
							b.Error(err)
							return
						}
					}
				})
			})
		}
	}
}

// BenchmarkParallelSetLabel sets labels of one namespace from 8
// goroutines (setfattr from concurrent clients).
func BenchmarkParallelSetLabel(b *testing.B) {
	for _, m := range commitModes {
		b.Run(m.name, func(b *testing.B) {
			db := openTestDB(b, Options{})
			db.setCommitMode(m.mode)
			var next atomic.Int64
			b.SetParallelism(8 / runtime.GOMAXPROCS(0))
			b.RunParallel(func(pb *testing.PB) {
				key := fmt.Sprintf("key%d", next.Add(1))
				for i := 0; pb.Next(); i++ {
					if err := db.Labels().Set(Object{Namespace: "default"}, key, fmt.Sprint(i), nil); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
