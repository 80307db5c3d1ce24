package fib

import (
	"errors"
	"math/rand/v2"
	"slices"
	"testing"
)

var errAbort = errors.New("abort")

func verify4(tb testing.TB, s *IP4Snapshot, ref ref4, addrs []uint32) {
	tb.Helper()
	for _, a := range addrs {
		if got, want := s.Lookup(a), ref.lookup(a); got != want {
			tb.Fatalf("Lookup(%08x) = %d, want %d", a, got, want)
		}
	}
}

func verifyWalk4(tb testing.TB, t *IP4, ref ref4) {
	tb.Helper()
	var got, want [][3]uint32
	t.Walk(func(a uint32, l int, v uint32) bool {
		got = append(got, [3]uint32{a, uint32(l), v})
		return true
	})
	for k, v := range ref {
		want = append(want, [3]uint32{k[0], k[1], v})
	}
	slices.SortFunc(want, func(a, b [3]uint32) int {
		if a[0] != b[0] {
			return int(int64(a[0]) - int64(b[0]))
		}
		return int(a[1]) - int(b[1])
	})
	if !slices.Equal(got, want) {
		tb.Fatalf("Walk mismatch: %d prefixes, want %d", len(got), len(want))
	}
	if t.Len() != len(ref) {
		tb.Fatalf("Len = %d, want %d", t.Len(), len(ref))
	}
	for k, v := range ref {
		if g, ok := t.Get(k[0], int(k[1])); !ok || g != v {
			tb.Fatalf("Get(%08x/%d) = %d,%v want %d", k[0], k[1], g, ok, v)
		}
	}
}

func TestIP4Random(t *testing.T) {
	for seed := range uint64(3) {
		r := rand.New(rand.NewPCG(seed, 1))
		tbl := NewIP4()
		ref := ref4{}
		type old struct {
			s   *IP4Snapshot
			ref ref4
		}
		var olds []old
		for round := range 200 {
			work := ref.clone()
			abort := r.IntN(8) == 0
			err := tbl.Update(func(tx *IP4Txn) error {
				for range 1 + r.IntN(40) {
					a, l := randPrefix4(r)
					k := [2]uint32{a, uint32(l)}
					if r.IntN(3) == 0 {
						existed, err := tx.Delete(a, l)
						if err != nil {
							return err
						}
						if _, ok := work[k]; ok != existed {
							t.Fatalf("Delete(%08x/%d) existed=%v, want %v", a, l, existed, ok)
						}
						delete(work, k)
						continue
					}
					v := 1 + r.Uint32N(1000)
					if err := tx.Set(a, l, v); err != nil {
						return err
					}
					work[k] = v
					if g, ok := tx.Get(a, l); !ok || g != v || tx.Len() != len(work) {
						t.Fatalf("txn view out of step")
					}
				}
				if abort {
					return errAbort
				}
				return nil
			})
			if abort != (err != nil) {
				t.Fatalf("Update err = %v, abort %v", err, abort)
			}
			if !abort {
				ref = work
			}
			s := tbl.Snapshot()
			verify4(t, s, ref, probes4(r, ref, 150))
			if round%25 == 0 {
				checkIP4(t, tbl, round%50 == 0)
				verifyWalk4(t, tbl, ref)
				olds = append(olds, old{s, ref.clone()})
			}
		}
		checkIP4(t, tbl, true)
		// Old snapshots must still answer as they did when published, even
		// after many copy-on-write transactions and compactions.
		for _, o := range olds {
			verify4(t, o.s, o.ref, probes4(r, o.ref, 300))
		}
		// Deleting everything must remove every ply below the root chunks.
		if err := tbl.Update(func(tx *IP4Txn) error {
			for k := range ref {
				if ok, err := tx.Delete(k[0], int(k[1])); !ok || err != nil {
					t.Fatalf("delete %v: %v %v", k, ok, err)
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		checkIP4(t, tbl, true)
		for _, ch := range tbl.Snapshot().root {
			for _, x := range tbl.Snapshot().plies[ch] {
				if x != 0 {
					t.Fatalf("empty table still has slot %x", x)
				}
			}
		}
	}
}

func TestIP4Edges(t *testing.T) {
	type op struct {
		del  bool
		addr uint32
		plen int
		v    uint32
	}
	type probe struct {
		addr uint32
		want uint32
	}
	cases := []struct {
		name   string
		ops    []op
		probes []probe
	}{
		{"empty", nil, []probe{{0, 0}, {0xffffffff, 0}}},
		{"default", []op{{false, 0, 0, 7}}, []probe{{0, 7}, {0x0a000001, 7}, {0xffffffff, 7}}},
		{"default under specifics", []op{{false, 0x0a000000, 8, 1}, {false, 0, 0, 7}},
			[]probe{{0x0a123456, 1}, {0x0b000000, 7}, {0x09ffffff, 7}}},
		{"host /32", []op{{false, 0x0a000001, 32, 3}},
			[]probe{{0x0a000001, 3}, {0x0a000000, 0}, {0x0a000002, 0}}},
		{"host 255.255.255.255", []op{{false, 0xffffffff, 32, 3}, {false, 0, 0, 1}},
			[]probe{{0xffffffff, 3}, {0xfffffffe, 1}}},
		{"/16 boundary", []op{{false, 0x0a010000, 16, 5}},
			[]probe{{0x0a010000, 5}, {0x0a01ffff, 5}, {0x0a00ffff, 0}, {0x0a020000, 0}}},
		{"/24 boundary", []op{{false, 0x0a0102ff &^ 0xff, 24, 6}},
			[]probe{{0x0a010200, 6}, {0x0a0102ff, 6}, {0x0a0101ff, 0}, {0x0a010300, 0}}},
		{"/15 spans two root slots", []op{{false, 0x0a000000, 15, 4}},
			[]probe{{0x0a000000, 4}, {0x0a01ffff, 4}, {0x0a020000, 0}}},
		{"/7 spans two chunks", []op{{false, 0x0a000000, 7, 4}},
			[]probe{{0x0a000000, 4}, {0x0bffffff, 4}, {0x0c000000, 0}, {0x09ffffff, 0}}},
		{"/17 and /23 in one ply", []op{{false, 0x0a018000, 17, 1}, {false, 0x0a01fe00, 23, 2}},
			[]probe{{0x0a017fff, 0}, {0x0a018000, 1}, {0x0a01fdff, 1}, {0x0a01fe00, 2}, {0x0a01ffff, 2}}},
		{"/25 under /24 under /16", []op{{false, 0x0a010000, 16, 1}, {false, 0x0a010200, 24, 2}, {false, 0x0a010280, 25, 3}},
			[]probe{{0x0a01027f, 2}, {0x0a010280, 3}, {0x0a0102ff, 3}, {0x0a010300, 1}}},
		{"shorter inserted after longer keeps precedence", []op{{false, 0x0a010280, 25, 3}, {false, 0x0a010200, 24, 2}, {false, 0x0a000000, 8, 1}},
			[]probe{{0x0a010280, 3}, {0x0a010200, 2}, {0x0a7f0000, 1}}},
		{"delete covering /16 restores /8", []op{{false, 0x0a000000, 8, 1}, {false, 0x0a010000, 16, 2}, {false, 0x0a010200, 24, 3}, {true, 0x0a010000, 16, 0}},
			[]probe{{0x0a010000, 1}, {0x0a010200, 3}, {0x0a01ffff, 1}}},
		{"delete covering /8 restores default", []op{{false, 0, 0, 9}, {false, 0x0a000000, 8, 1}, {false, 0x0a010000, 16, 2}, {true, 0x0a000000, 8, 0}},
			[]probe{{0x0a000000, 9}, {0x0a010000, 2}, {0x0affffff, 9}}},
		{"delete last specific collapses to cover", []op{{false, 0x0a000000, 12, 1}, {false, 0x0a010203, 32, 2}, {true, 0x0a010203, 32, 0}},
			[]probe{{0x0a010203, 1}, {0x0a010200, 1}}},
		{"delete middle of three", []op{{false, 0x0a010000, 20, 1}, {false, 0x0a010000, 22, 2}, {false, 0x0a010000, 24, 3}, {true, 0x0a010000, 22, 0}},
			[]probe{{0x0a010000, 3}, {0x0a010100, 1}, {0x0a010300, 1}, {0x0a010400, 1}}},
		{"replace value", []op{{false, 0x0a010000, 24, 1}, {false, 0x0a010000, 24, 2}},
			[]probe{{0x0a010000, 2}, {0x0a0100ff, 2}}},
		{"replace shorter under specifics", []op{{false, 0x0a000000, 8, 1}, {false, 0x0a010000, 24, 2}, {false, 0x0a000000, 8, 5}},
			[]probe{{0x0a010000, 2}, {0x0a010100, 5}, {0x0aff0000, 5}}},
		{"max value", []op{{false, 0x0a000000, 8, MaxValue}}, []probe{{0x0a000000, MaxValue}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			// Apply both in one transaction and one transaction per op: the
			// result must not depend on batching.
			for _, batch := range []bool{true, false} {
				tbl := NewIP4()
				ref := ref4{}
				apply := func(tx *IP4Txn, o op) error {
					if o.del {
						ok, err := tx.Delete(o.addr, o.plen)
						if err == nil && !ok {
							t.Fatalf("delete of missing %08x/%d", o.addr, o.plen)
						}
						delete(ref, [2]uint32{o.addr, uint32(o.plen)})
						return err
					}
					ref[[2]uint32{o.addr, uint32(o.plen)}] = o.v
					return tx.Set(o.addr, o.plen, o.v)
				}
				if batch {
					if err := tbl.Update(func(tx *IP4Txn) error {
						for _, o := range c.ops {
							if err := apply(tx, o); err != nil {
								return err
							}
						}
						return nil
					}); err != nil {
						t.Fatal(err)
					}
				} else {
					for _, o := range c.ops {
						if err := tbl.Update(func(tx *IP4Txn) error { return apply(tx, o) }); err != nil {
							t.Fatal(err)
						}
					}
				}
				s := tbl.Snapshot()
				for _, p := range c.probes {
					if got := s.Lookup(p.addr); got != p.want {
						t.Fatalf("batch=%v Lookup(%08x) = %d, want %d", batch, p.addr, got, p.want)
					}
				}
				checkIP4(t, tbl, true)
				verifyWalk4(t, tbl, ref)
			}
		})
	}
}

func TestIP4Errors(t *testing.T) {
	tbl := NewIP4()
	var saved *IP4Txn
	err := tbl.Update(func(tx *IP4Txn) error {
		saved = tx
		for _, c := range []struct {
			addr uint32
			plen int
			v    uint32
			want error
		}{
			{0x0a000001, 24, 1, ErrHostBits},
			{0x80000000, 0, 1, ErrHostBits},
			{0x0a000000, 33, 1, ErrPrefixLen},
			{0x0a000000, -1, 1, ErrPrefixLen},
			{0x0a000000, 8, 0, ErrValue},
			{0x0a000000, 8, MaxValue + 1, ErrValue},
		} {
			if err := tx.Set(c.addr, c.plen, c.v); !errors.Is(err, c.want) {
				t.Errorf("Set(%08x/%d, %d) = %v, want %v", c.addr, c.plen, c.v, err, c.want)
			}
		}
		if _, err := tx.Delete(0x0a000001, 24); !errors.Is(err, ErrHostBits) {
			t.Errorf("Delete host bits: %v", err)
		}
		if _, err := tx.Delete(0, 40); !errors.Is(err, ErrPrefixLen) {
			t.Errorf("Delete plen: %v", err)
		}
		if ok, err := tx.Delete(0x0a000000, 8); ok || err != nil {
			t.Errorf("Delete missing = %v, %v", ok, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := saved.Set(0, 0, 1); !errors.Is(err, ErrTxnDone) {
		t.Errorf("Set after Update = %v", err)
	}
	if tbl.Len() != 0 {
		t.Errorf("Len = %d", tbl.Len())
	}
	if _, ok := tbl.Get(0, 99); ok {
		t.Errorf("Get bad plen found something")
	}
}

func TestIP4Rollback(t *testing.T) {
	tbl := NewIP4()
	set := func(tx *IP4Txn, a uint32, l int, v uint32) {
		if err := tx.Set(a, l, v); err != nil {
			t.Fatal(err)
		}
	}
	if err := tbl.Update(func(tx *IP4Txn) error {
		set(tx, 0x0a000000, 8, 1)
		set(tx, 0x0a010200, 24, 2)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	before := tbl.Snapshot()
	err := tbl.Update(func(tx *IP4Txn) error {
		set(tx, 0, 0, 9)
		set(tx, 0x0a010200, 24, 3)
		set(tx, 0x0a010203, 32, 4)
		if _, err := tx.Delete(0x0a000000, 8); err != nil {
			t.Fatal(err)
		}
		return errAbort
	})
	if err != errAbort {
		t.Fatalf("err = %v", err)
	}
	if tbl.Snapshot() != before {
		t.Fatal("aborted transaction published")
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("panic not propagated")
			}
		}()
		_ = tbl.Update(func(tx *IP4Txn) error {
			set(tx, 0, 0, 9)
			panic("boom")
		})
	}()
	if tbl.Snapshot() != before {
		t.Fatal("panicking transaction published")
	}
	checkIP4(t, tbl, true)
	verifyWalk4(t, tbl, ref4{{0x0a000000, 8}: 1, {0x0a010200, 24}: 2})
	// The writer must still work from the rolled-back state.
	if err := tbl.Update(func(tx *IP4Txn) error { set(tx, 0x0a010203, 32, 5); return nil }); err != nil {
		t.Fatal(err)
	}
	s := tbl.Snapshot()
	if s.Lookup(0x0a010203) != 5 || s.Lookup(0x0a010204) != 2 || s.Lookup(0x0b000000) != 0 {
		t.Fatal("wrong state after rollback")
	}
	checkIP4(t, tbl, true)
}

func TestIP4NoPublishWithoutChange(t *testing.T) {
	tbl := NewIP4()
	_ = tbl.Update(func(tx *IP4Txn) error { return tx.Set(0x0a000000, 8, 1) })
	s := tbl.Snapshot()
	_ = tbl.Update(func(tx *IP4Txn) error {
		_, _ = tx.Delete(0x0b000000, 8)
		return tx.Set(0x0a000000, 8, 1)
	})
	if tbl.Snapshot() != s {
		t.Fatal("no-op transaction published a new snapshot")
	}
}

func TestIP4ZeroValue(t *testing.T) {
	var tbl IP4
	if tbl.Snapshot().Lookup(0x01020304) != 0 || tbl.Len() != 0 {
		t.Fatal("zero table not empty")
	}
	if err := tbl.Update(func(tx *IP4Txn) error { return tx.Set(0x01020300, 24, 3) }); err != nil {
		t.Fatal(err)
	}
	if tbl.Snapshot().Lookup(0x01020304) != 3 {
		t.Fatal("zero table update lost")
	}
	// One root chunk copied from the shared zero chunk plus one /24 ply.
	if st := tbl.Stats(); st.Routes != 1 || st.Plies != 2 || st.Bytes <= 0 {
		t.Fatalf("Stats = %+v", st)
	}
}

func TestIP4LookupAllocs(t *testing.T) {
	tbl := NewIP4()
	r := rand.New(rand.NewPCG(1, 2))
	_ = tbl.Update(func(tx *IP4Txn) error {
		for range 2000 {
			a, l := randPrefix4(r)
			_ = tx.Set(a, l, 1+r.Uint32N(100))
		}
		return nil
	})
	addrs := probes4(r, ref4{}, 64)
	s := tbl.Snapshot()
	var sink uint32
	if n := testing.AllocsPerRun(100, func() {
		s := tbl.Snapshot()
		for _, a := range addrs {
			sink += s.Lookup(a)
		}
	}); n != 0 {
		t.Fatalf("Lookup allocates %v times", n)
	}
	_ = s
	_ = sink
}
