package e2e

import (
	"encoding/binary"
	"runtime"
	"testing"

	"github.com/vecnet/vecnet/pkg/header"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// injectRaw sends frames out of ifname inside namespace ns through an
// AF_PACKET socket: the way to put malformed packets on a tun device, whose
// kernel side otherwise only ever sends well-formed IP.
func injectRaw(t *testing.T, ns, ifname string, frames [][]byte) {
	t.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer orig.Close()
	target, err := netns.GetFromName(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer target.Close()
	if err := netns.Set(target); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := netns.Set(orig); err != nil {
			panic(err) // never continue on a thread in the wrong namespace
		}
	}()
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	idx, err := ifIndex(fd, ifname)
	if err != nil {
		t.Fatalf("ifindex %s: %v", ifname, err)
	}
	for _, f := range frames {
		proto := uint16(unix.ETH_P_IP)
		if len(f) > 0 && f[0]>>4 == 6 {
			proto = unix.ETH_P_IPV6
		}
		sa := &unix.SockaddrLinklayer{Ifindex: idx, Protocol: htons(proto)}
		if err := unix.Sendto(fd, f, 0, sa); err != nil {
			t.Fatalf("inject %d bytes: %v", len(f), err)
		}
	}
}

func ifIndex(fd int, name string) (int, error) {
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return 0, err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFINDEX, ifr); err != nil {
		return 0, err
	}
	return int(ifr.Uint32()), nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// garbageFrames returns one packet per malformation that ip4-input,
// ip6-input and tun-input must count.
func garbageFrames() [][]byte {
	good := func() []byte {
		b := make([]byte, 28)
		ip := header.IPv4(b)
		ip.Encode(&header.IPv4Fields{TotalLength: 28, TTL: 64, Protocol: header.ProtocolUDP,
			Src: [4]byte{10, 77, 0, 2}, Dst: [4]byte{10, 77, 0, 3}})
		ip.SetChecksum(ip.CalculateChecksum())
		return b
	}
	short := good()[:12]
	badIHL := good()
	badIHL[0] = 0x44
	badTotal := good()
	binary.BigEndian.PutUint16(badTotal[2:], 2000)
	header.IPv4(badTotal).SetChecksum(0)
	header.IPv4(badTotal).SetChecksum(header.IPv4(badTotal).CalculateChecksum())
	badSum := good()
	badSum[10] ^= 0xff
	loopSrc := good()
	header.IPv4(loopSrc).SetSourceAddress([4]byte{127, 0, 0, 1})
	header.IPv4(loopSrc).SetChecksum(0)
	header.IPv4(loopSrc).SetChecksum(header.IPv4(loopSrc).CalculateChecksum())
	v6short := make([]byte, 20)
	v6short[0] = 0x60
	v6len := make([]byte, 48)
	header.IPv6(v6len).Encode(&header.IPv6Fields{PayloadLength: 1000, NextHeader: header.ProtocolUDP, HopLimit: 64})
	version7 := good()
	version7[0] = 0x75
	return [][]byte{short, badIHL, badTotal, badSum, loopSrc, v6short, v6len, version7}
}
