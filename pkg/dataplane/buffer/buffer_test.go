package buffer

import "testing"

func TestAllocFreeAndSizes(t *testing.T) {
	p := NewPool(4, 2)
	var got []Index
	for {
		b, ok := p.Alloc()
		if !ok {
			break
		}
		if p.IsLarge(b) || len(p.Data(b)) != SmallSize || p.Meta(b).Start != Headroom {
			t.Fatalf("small buffer %d: large %v len %d start %d", b, p.IsLarge(b), len(p.Data(b)), p.Meta(b).Start)
		}
		got = append(got, b)
	}
	if len(got) != 4 {
		t.Fatalf("allocated %d small, want 4", len(got))
	}
	l, ok := p.AllocLarge()
	if !ok || !p.IsLarge(l) || len(p.Data(l)) != LargeSize {
		t.Fatalf("large buffer: %v %v %d", ok, p.IsLarge(l), len(p.Data(l)))
	}
	// Buffers do not overlap: writing one never changes another.
	for i, b := range got {
		d := p.Data(b)
		for j := range d {
			d[j] = byte(i + 1)
		}
	}
	for i, b := range got {
		for _, x := range p.Data(b) {
			if x != byte(i+1) {
				t.Fatalf("buffer %d overwritten", b)
			}
		}
	}
	for _, b := range got {
		p.Free(b)
	}
	p.Free(l)
	if s, lg := p.FreeCount(); s != 4 || lg != 2 {
		t.Fatalf("free %d/%d", s, lg)
	}
}

func TestDoubleFreePanics(t *testing.T) {
	p := NewPool(2, 1)
	b, _ := p.Alloc()
	p.Free(b)
	defer func() {
		if recover() == nil {
			t.Fatal("double free did not panic")
		}
	}()
	p.Free(b)
	p.Free(b)
}

func TestPacketFollowsMeta(t *testing.T) {
	p := NewPool(1, 0)
	b, _ := p.Alloc()
	m := p.Meta(b)
	copy(p.Data(b)[Headroom:], "hello")
	m.Len = 5
	if string(p.Packet(b)) != "hello" {
		t.Fatal("packet")
	}
	m.Start -= 2
	m.Len += 2
	copy(p.Data(b)[m.Start:], "<<")
	if string(p.Packet(b)) != "<<hello" {
		t.Fatalf("prepend: %q", p.Packet(b))
	}
}

func BenchmarkAllocFree(b *testing.B) {
	p := NewPool(256, 1)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		x, _ := p.Alloc()
		p.Free(x)
	}
}
