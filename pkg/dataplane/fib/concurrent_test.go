package fib

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The concurrency tests let a writer step a table through versions 1, 2, 3...
// Version k holds a fixed prefix list, minus a subset when k is odd, with
// every value encoding k. Readers take a snapshot, read the version from a
// probe that only the default route covers and then demand that every other
// probe answers exactly as version k must. Inside each transaction the writer
// first overwrites all prefixes with a poison value, deletes and re-adds some
// and only then writes the final values, and now and then runs a transaction
// full of poison that it aborts. So a reader can only pass if it sees
// published versions whole: any write into memory reachable from a published
// snapshot (broken copy-on-write) shows up as poison, a wrong version or a
// version going backwards, and under -race as a data race.

const poison = MaxValue

// concDuration bounds each concurrency test; the writer is the bottleneck
// on small machines, readers run as fast as they can meanwhile.
const concDuration = 1500 * time.Millisecond

func verOf(v uint32) uint32 { return v >> 7 }

func valueFor(k uint32, i int) uint32 { return k<<7 | uint32(i+1) }

type concPrefix4 struct {
	addr    uint32
	plen    int
	dropOdd bool
}

const versionProbe4 = 0x30000000 // covered only by 0/0

func concPrefixes4() []concPrefix4 {
	ps := []concPrefix4{{0, 0, false}} // index 0: the version probe's route
	add := func(a uint32, l int, drop bool) { ps = append(ps, concPrefix4{a & mask4(l), l, drop}) }
	add(0x0a000000, 8, false)
	add(0x0a000000, 7, true)
	add(0x0a010000, 16, true)
	add(0x0a010000, 17, false)
	add(0x0a018000, 17, true)
	add(0x0a010200, 24, false)
	add(0x0a010280, 25, true)
	add(0x0a010203, 32, false)
	add(0x0a0102ff, 32, true)
	add(0x0a020000, 15, false)
	add(0x0a030400, 22, true)
	add(0x0a030500, 24, false)
	add(0x0aff0000, 16, true)
	add(0x0affff00, 24, false)
	add(0xc0a80000, 16, false)
	add(0xc0a80100, 24, true)
	add(0xc0a80101, 32, false)
	add(0xc0a80000, 20, true)
	add(0x80000000, 1, true)
	add(0xff000000, 8, false)
	add(0xffffffff, 32, true)
	r := rand.New(rand.NewPCG(77, 77))
	for range 40 {
		a, l := randPrefix4(r)
		if l > 0 && versionProbe4&mask4(l) != a {
			add(a, l, r.IntN(2) == 0)
		}
	}
	// randPrefix4 may repeat a prefix; keep the first.
	seen := map[[2]uint32]bool{}
	out := ps[:0]
	for _, p := range ps {
		k := [2]uint32{p.addr, uint32(p.plen)}
		if !seen[k] {
			seen[k] = true
			out = append(out, p)
		}
	}
	return out
}

func TestConcurrentIP4(t *testing.T) {
	ps := concPrefixes4()
	const versionProbe = versionProbe4
	var refs [2]ref4
	for par := range 2 {
		refs[par] = ref4{}
		for i, p := range ps {
			if !(par == 1 && p.dropOdd) {
				refs[par][[2]uint32{p.addr, uint32(p.plen)}] = uint32(i + 1)
			}
		}
	}
	if refs[0].lookup(versionProbe) != 1 {
		t.Fatal("version probe is covered by more than the default route")
	}
	r := rand.New(rand.NewPCG(5, 5))
	probes := probes4(r, refs[0], 400)
	// want[par][j] is the index+1 of the prefix matching probe j, 0 for none.
	var want [2][]uint32
	for par := range 2 {
		for _, a := range probes {
			want[par] = append(want[par], refs[par].lookup(a))
		}
	}

	tbl := NewIP4()
	write := func(k uint32) {
		par := k & 1
		if k%7 == 0 {
			err := tbl.Update(func(tx *IP4Txn) error {
				for _, p := range ps {
					if err := tx.Set(p.addr, p.plen, poison); err != nil {
						t.Error(err)
					}
				}
				return errAbort
			})
			if err != errAbort {
				t.Error("abort lost")
			}
		}
		err := tbl.Update(func(tx *IP4Txn) error {
			for _, p := range ps {
				if err := tx.Set(p.addr, p.plen, poison); err != nil {
					return err
				}
			}
			for i, p := range ps {
				if i%3 == 0 {
					if _, err := tx.Delete(p.addr, p.plen); err != nil {
						return err
					}
				}
			}
			for i, p := range ps {
				if par == 1 && p.dropOdd {
					if _, err := tx.Delete(p.addr, p.plen); err != nil {
						return err
					}
				} else if err := tx.Set(p.addr, p.plen, valueFor(k, i)); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Error(err)
		}
	}
	write(1)

	var stop atomic.Bool
	var wg sync.WaitGroup
	var checked atomic.Int64
	readers := 2
	errs := make(chan error, readers)
	for range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			last := uint32(0)
			for !stop.Load() {
				s := tbl.Snapshot()
				k := verOf(s.Lookup(versionProbe))
				if k < last || k == 0 {
					errs <- fmt.Errorf("version went from %d to %d", last, k)
					return
				}
				last = k
				w := want[k&1]
				for j, a := range probes {
					exp := uint32(0)
					if w[j] != 0 {
						exp = valueFor(k, int(w[j]-1))
					}
					if got := s.Lookup(a); got != exp {
						errs <- fmt.Errorf("version %d: Lookup(%08x) = %#x (version %d), want %#x", k, a, got, verOf(got), exp)
						return
					}
				}
				checked.Add(1)
			}
		}()
	}
	versions := uint32(1)
	for deadline := time.Now().Add(concDuration); time.Now().Before(deadline) && !t.Failed(); {
		versions++
		write(versions)
		if versions%50 == 0 {
			runtime.GC() // let superseded arenas actually be reclaimed meanwhile
		}
	}
	time.Sleep(10 * time.Millisecond)
	stop.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	checkIP4(t, tbl, true)
	t.Logf("%d versions, %d consistent snapshot checks", versions, checked.Load())
	if checked.Load() == 0 {
		t.Fatal("readers never ran")
	}
}

func TestConcurrentIP6(t *testing.T) {
	// Small pages: the table spans many pages, so page-level copy-on-write
	// is what the readers check.
	withPageBits(2, func() { testConcurrentIP6(t) })
}

func testConcurrentIP6(t *testing.T) {
	type pfx struct {
		hi, lo  uint64
		plen    int
		dropOdd bool
	}
	ps := []pfx{{0, 0, 0, false}}
	r := rand.New(rand.NewPCG(66, 66))
	seen := map[key6]bool{{0, 0, 0}: true}
	vp := [2]uint64{0x3fff_1234_0000_0000, 42}
	for len(ps) < 80 {
		hi, lo, l := randPrefix6(r)
		mh, ml := mask6(l)
		if k := (key6{hi, lo, l}); !seen[k] && (vp[0]&mh != hi || vp[1]&ml != lo) {
			seen[k] = true
			ps = append(ps, pfx{hi, lo, l, r.IntN(2) == 0})
		}
	}
	var refs [2]ref6
	for par := range 2 {
		refs[par] = ref6{}
		for i, p := range ps {
			if !(par == 1 && p.dropOdd) {
				refs[par][key6{p.hi, p.lo, p.plen}] = uint32(i + 1)
			}
		}
	}
	if refs[0].lookup(vp[0], vp[1]) != 1 {
		t.Fatal("version probe is covered by more than the default route")
	}
	probes := probes6(r, refs[0], 400)
	var want [2][]uint32
	for par := range 2 {
		for _, a := range probes {
			want[par] = append(want[par], refs[par].lookup(a[0], a[1]))
		}
	}
	tbl := NewIP6()
	write := func(k uint32) {
		par := k & 1
		if k%7 == 0 {
			_ = tbl.Update(func(tx *IP6Txn) error {
				for _, p := range ps {
					_ = tx.Set(p.hi, p.lo, p.plen, poison)
				}
				return errAbort
			})
		}
		err := tbl.Update(func(tx *IP6Txn) error {
			for _, p := range ps {
				if err := tx.Set(p.hi, p.lo, p.plen, poison); err != nil {
					return err
				}
			}
			for i, p := range ps {
				if i%3 == 0 {
					if _, err := tx.Delete(p.hi, p.lo, p.plen); err != nil {
						return err
					}
				}
			}
			for i, p := range ps {
				if par == 1 && p.dropOdd {
					if _, err := tx.Delete(p.hi, p.lo, p.plen); err != nil {
						return err
					}
				} else if err := tx.Set(p.hi, p.lo, p.plen, valueFor(k, i)); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Error(err)
		}
	}
	write(1)
	var stop atomic.Bool
	var wg sync.WaitGroup
	var checked atomic.Int64
	readers := 2
	errs := make(chan error, readers)
	for range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			last := uint32(0)
			for !stop.Load() {
				s := tbl.Snapshot()
				k := verOf(s.Lookup(vp[0], vp[1]))
				if k < last || k == 0 {
					errs <- fmt.Errorf("version went from %d to %d", last, k)
					return
				}
				last = k
				w := want[k&1]
				for j, a := range probes {
					exp := uint32(0)
					if w[j] != 0 {
						exp = valueFor(k, int(w[j]-1))
					}
					if got := s.Lookup(a[0], a[1]); got != exp {
						errs <- fmt.Errorf("version %d: Lookup(%x:%x) = %#x, want %#x", k, a[0], a[1], got, exp)
						return
					}
				}
				checked.Add(1)
			}
		}()
	}
	versions := uint32(1)
	for deadline := time.Now().Add(concDuration); time.Now().Before(deadline) && !t.Failed(); {
		versions++
		write(versions)
	}
	time.Sleep(10 * time.Millisecond)
	stop.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	checkIP6(t, tbl)
	t.Logf("%d versions, %d consistent snapshot checks", versions, checked.Load())
	if checked.Load() == 0 {
		t.Fatal("readers never ran")
	}
}
