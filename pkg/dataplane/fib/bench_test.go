package fib_test

import (
	"fmt"
	"runtime"
	"sync"
	"testing"

	"github.com/vecnet/vecnet/pkg/dataplane/fib"
	"github.com/vecnet/vecnet/pkg/dataplane/fib/fibtest"
)

type table4 struct {
	t      *fib.IP4
	routes []fibtest.Route4
	addrs  []uint32
	bytes  float64 // heap bytes per route right after loading
}

var (
	tables4  = map[int]*table4{}
	tables6  = map[int]*table6{}
	tablesMu sync.Mutex
)

func heapInUse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// getTable4 builds each size once per test binary: the 1M-route table takes
// a while to generate and every benchmark round would otherwise rebuild it.
func getTable4(n int) *table4 {
	tablesMu.Lock()
	defer tablesMu.Unlock()
	if tb := tables4[n]; tb != nil {
		return tb
	}
	routes := fibtest.RandomIP4Routes(n, 1)
	before := heapInUse()
	t := fib.NewIP4()
	if err := fibtest.LoadIP4(t, routes); err != nil {
		panic(err)
	}
	after := heapInUse()
	tb := &table4{t, routes, fibtest.IP4LookupAddrs(routes, 1<<20, 2), float64(after-before) / float64(n)}
	tables4[n] = tb
	return tb
}

var sink uint32

var valueCounter uint32 = 1 << 24

// nextValue returns values never used by the generated tables (1..n).
func nextValue() uint32 {
	valueCounter++
	if valueCounter > fib.MaxValue {
		valueCounter = 1 << 24
	}
	return valueCounter
}

func BenchmarkIP4Lookup(b *testing.B) {
	for _, n := range []int{1000, 1000000} {
		b.Run(fmt.Sprintf("routes=%d", n), func(b *testing.B) {
			tb := getTable4(n)
			b.ReportAllocs()
			s := tb.t.Snapshot()
			addrs := tb.addrs
			var sum uint32
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				sum += s.Lookup(addrs[i&(len(addrs)-1)])
			}
			sink = sum
			b.StopTimer()
			st := tb.t.Stats()
			b.ReportMetric(tb.bytes, "heapB/route")
			b.ReportMetric(float64(st.Plies), "plies")
		})
	}
}

// BenchmarkIP4LookupLatency makes each address depend on the previous
// result, so cache misses cannot overlap: this is per-lookup latency, not
// throughput.
func BenchmarkIP4LookupLatency(b *testing.B) {
	for _, n := range []int{1000, 1000000} {
		b.Run(fmt.Sprintf("routes=%d", n), func(b *testing.B) {
			tb := getTable4(n)
			s := tb.t.Snapshot()
			addrs := tb.addrs
			b.ReportAllocs()
			var v uint32
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				v = s.Lookup(addrs[(i^int(v&1))&(len(addrs)-1)])
			}
			sink = v
		})
	}
}

func BenchmarkIP4Update(b *testing.B) {
	tb := getTable4(1000000)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		rt := tb.routes[(i*7919)%len(tb.routes)]
		v := nextValue() // always differs from the current one, or Update would publish nothing
		if err := tb.t.Update(func(tx *fib.IP4Txn) error { return tx.Set(rt.Addr, rt.Len, v) }); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkIP4UpdateAddDelete adds and removes /32 host routes, which create
// and collapse plies instead of only rewriting leaves.
func BenchmarkIP4UpdateAddDelete(b *testing.B) {
	tb := getTable4(1000000)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		a := tb.addrs[(i>>1)&(len(tb.addrs)-1)]
		if err := tb.t.Update(func(tx *fib.IP4Txn) error {
			if i&1 == 0 {
				return tx.Set(a, 32, 12345)
			}
			_, err := tx.Delete(a, 32)
			return err
		}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkIP4Load100k(b *testing.B) {
	routes := fibtest.RandomIP4Routes(100000, 3)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := fibtest.LoadIP4(fib.NewIP4(), routes); err != nil {
			b.Fatal(err)
		}
	}
}

type table6 struct {
	t      *fib.IP6
	routes []fibtest.Route6
	addrs  [][2]uint64
	bytes  float64
}

func getTable6(n int) *table6 {
	tablesMu.Lock()
	defer tablesMu.Unlock()
	if tb := tables6[n]; tb != nil {
		return tb
	}
	routes := fibtest.RandomIP6Routes(n, 1)
	before := heapInUse()
	t := fib.NewIP6()
	if err := fibtest.LoadIP6(t, routes); err != nil {
		panic(err)
	}
	after := heapInUse()
	tb := &table6{t, routes, fibtest.IP6LookupAddrs(routes, 1<<20, 2), float64(after-before) / float64(n)}
	tables6[n] = tb
	return tb
}

func BenchmarkIP6Lookup(b *testing.B) {
	for _, n := range []int{1000, 100000} {
		b.Run(fmt.Sprintf("routes=%d", n), func(b *testing.B) {
			tb := getTable6(n)
			b.ReportAllocs()
			s := tb.t.Snapshot()
			addrs := tb.addrs
			var sum uint32
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				a := addrs[i&(len(addrs)-1)]
				sum += s.Lookup(a[0], a[1])
			}
			sink = sum
			b.StopTimer()
			b.ReportMetric(tb.bytes, "heapB/route")
		})
	}
}

func BenchmarkIP6Update(b *testing.B) {
	tb := getTable6(100000)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		rt := tb.routes[(i*7919)%len(tb.routes)]
		v := nextValue()
		if err := tb.t.Update(func(tx *fib.IP6Txn) error { return tx.Set(rt.Hi, rt.Lo, rt.Len, v) }); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkIP6Load100k(b *testing.B) {
	routes := fibtest.RandomIP6Routes(100000, 3)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := fibtest.LoadIP6(fib.NewIP6(), routes); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkIP6UpdateAddDelete adds and removes /128 host routes, which also
// adds and removes /32 aggregate index entries.
func BenchmarkIP6UpdateAddDelete(b *testing.B) {
	tb := getTable6(100000)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		a := tb.addrs[(i>>1)&(len(tb.addrs)-1)]
		if err := tb.t.Update(func(tx *fib.IP6Txn) error {
			if i&1 == 0 {
				return tx.Set(a[0], a[1], 128, 12345)
			}
			_, err := tx.Delete(a[0], a[1], 128)
			return err
		}); err != nil {
			b.Fatal(err)
		}
	}
}
