package uplinkfilter

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"os"
	"testing"

	"github.com/vecnet/vecnet/pkg/dataplane/driver"
)

// fuzzFilter builds a small filter from fuzz bytes fb. Random prefixes
// would almost never cover a random frame, so most entries are taken from
// the frame itself (its IPv4/IPv6 destination with a fuzz-chosen length, as
// node address, its UDP port), spelled in the forms Update normalises
// (IPv4-mapped, unmasked); the rest of fb adds arbitrary entries.
func fuzzFilter(fb, frame []byte) driver.Filter {
	if len(fb) == 0 {
		return tableFilter
	}
	flags := fb[0]
	var bits byte
	if len(fb) > 1 {
		bits = fb[1]
	}
	var f driver.Filter
	if len(frame) >= 34 && flags&0x01 != 0 {
		a := netip.AddrFrom4([4]byte(frame[30:34]))
		n := int(bits % 33)
		if flags&0x20 != 0 {
			f.Prefixes = append(f.Prefixes, netip.PrefixFrom(netip.AddrFrom16(a.As16()), 96+n))
		} else {
			f.Prefixes = append(f.Prefixes, netip.PrefixFrom(a, n))
		}
	}
	if len(frame) >= 54 && flags&0x02 != 0 {
		f.Prefixes = append(f.Prefixes, netip.PrefixFrom(netip.AddrFrom16([16]byte(frame[38:54])), int(bits%129)))
	}
	if len(frame) >= 34 && flags&0x04 != 0 {
		a := netip.AddrFrom4([4]byte(frame[30:34]))
		if flags&0x40 != 0 {
			a = netip.AddrFrom16(a.As16())
		}
		f.NodeAddrs = append(f.NodeAddrs, a)
	}
	if len(frame) >= 15 && flags&0x08 != 0 {
		off := ethHdrLen + int(frame[14]&0x0f)*4 + udpDstPortOff
		if len(frame) >= off+2 {
			if p := binary.BigEndian.Uint16(frame[off:]); p != 0 {
				f.UDPPorts = append(f.UDPPorts, p)
			}
		}
	}
	if flags&0x10 != 0 {
		f.Prefixes = append(f.Prefixes, tableFilter.Prefixes...)
		f.NodeAddrs = append(f.NodeAddrs, tableFilter.NodeAddrs...)
		f.UDPPorts = append(f.UDPPorts, tableFilter.UDPPorts...)
	}
	// Arbitrary entries, 7 bytes each: kind, 4 address bytes, length, port.
	rest := fb[min(len(fb), 2):min(len(fb), 2+4*7)]
	for ; len(rest) >= 7; rest = rest[7:] {
		a := netip.AddrFrom4([4]byte(rest[1:5]))
		switch rest[0] % 4 {
		case 0:
			f.Prefixes = append(f.Prefixes, netip.PrefixFrom(a, int(rest[5]%33)))
		case 1:
			f.Prefixes = append(f.Prefixes, netip.PrefixFrom(netip.AddrFrom16([16]byte{0xfd, rest[1], rest[2], rest[3], rest[4]}), int(rest[5]%129)))
		case 2:
			f.NodeAddrs = append(f.NodeAddrs, a)
		case 3:
			if p := binary.BigEndian.Uint16(rest[5:]); p != 0 {
				f.UDPPorts = append(f.UDPPorts, p)
			}
		}
	}
	return f
}

// FuzzDecision holds the three programs to Decide on arbitrary frames and
// filters. The programs are loaded once per fuzzing process, and the maps
// updated only when the filter changes.
func FuzzDecision(f *testing.F) {
	for i, c := range decisionCases() {
		f.Add(c.frame, []byte{})                     // the table's filter
		f.Add(c.frame, []byte{byte(i), byte(i * 7)}) // filters from the frame
		f.Add(c.frame, []byte{0x1f, 24, 2, 192, 168, 1, 10, 0, 0, 3, 0, 0, 0, 0, 0x12, 0xb5})
	}
	var ts *testSet
	if os.Geteuid() == 0 {
		ts = newTestSet(f, 1)
	}
	last := "unset"
	f.Fuzz(func(t *testing.T, frame, fb []byte) {
		// Test-run takes at most about a page. min, not an if: a branch
		// only long inputs reach would be new coverage the minimizer must
		// keep, and it then spends its whole budget (O(n²) candidates, each
		// a few syscalls) on a 1515-byte input.
		frame = frame[:min(len(frame), 1514)]
		filter := fuzzFilter(fb, frame)
		want := Decide(frame, &filter)
		if ts == nil {
			return // not root: Decide must at least not panic
		}
		if key := fmt.Sprint(filter); key != last {
			if err := ts.Update(filter); err != nil {
				t.Fatalf("Update(%v): %v", filter, err)
			}
			last = key
		}
		if err := ts.check(frame, want); err != nil {
			t.Errorf("Decide says ours=%v, %v\nfilter %v\nframe % x", want, err, filter, frame)
		}
	})
}
