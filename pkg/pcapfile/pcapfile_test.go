package pcapfile

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// ipv4UDP builds an IPv4/UDP packet with a valid header checksum.
func ipv4UDP(src, dst [4]byte, sport, dport uint16, payload []byte) []byte {
	total := 20 + 8 + len(payload)
	p := make([]byte, total)
	p[0] = 0x45
	binary.BigEndian.PutUint16(p[2:], uint16(total))
	p[8] = 64 // TTL
	p[9] = 17 // UDP
	copy(p[12:], src[:])
	copy(p[16:], dst[:])
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(p[i:]))
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	binary.BigEndian.PutUint16(p[10:], ^uint16(sum))
	binary.BigEndian.PutUint16(p[20:], sport)
	binary.BigEndian.PutUint16(p[22:], dport)
	binary.BigEndian.PutUint16(p[24:], uint16(8+len(payload)))
	copy(p[28:], payload)
	return p
}

// ethernet wraps an IPv4 packet in an Ethernet II frame.
func ethernet(ip []byte) []byte {
	f := make([]byte, 14+len(ip))
	copy(f[0:], []byte{0x02, 0, 0, 0, 0, 0x02}) // dst
	copy(f[6:], []byte{0x02, 0, 0, 0, 0, 0x01}) // src
	binary.BigEndian.PutUint16(f[12:], 0x0800)  // IPv4
	copy(f[14:], ip)
	return f
}

type testPacket struct {
	ts      time.Time
	data    []byte
	origLen int
}

func samplePackets(link uint32) []testPacket {
	base := time.Unix(1700000000, 123456789)
	var pkts []testPacket
	for i := 0; i < 3; i++ {
		ip := ipv4UDP([4]byte{10, 0, 0, 1}, [4]byte{10, 0, 0, byte(2 + i)}, 1000+uint16(i), 53, []byte("hello vecnet"))
		data := ip
		if link == LinkTypeEthernet {
			data = ethernet(ip)
		}
		pkts = append(pkts, testPacket{ts: base.Add(time.Duration(i) * time.Millisecond), data: data})
	}
	return pkts
}

func writeFile(t *testing.T, res Resolution, link uint32, snaplen uint32, pkts []testPacket) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := NewWriter(&buf, res)
	if err := w.WriteHeader(link, snaplen); err != nil {
		t.Fatal(err)
	}
	for _, p := range pkts {
		if err := w.WritePacket(p.ts, p.data, p.origLen); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

func TestHeader(t *testing.T) {
	b := writeFile(t, Nanosecond, LinkTypeRaw, 0, nil)
	want := []byte{
		0x4d, 0x3c, 0xb2, 0xa1, // magic, little-endian
		2, 0, 4, 0, // version 2.4
		0, 0, 0, 0, 0, 0, 0, 0, // thiszone, sigfigs
		0, 0, 4, 0, // snaplen 262144
		101, 0, 0, 0, // LINKTYPE_RAW
	}
	if !bytes.Equal(b, want) {
		t.Fatalf("header\n got % x\nwant % x", b, want)
	}
	b = writeFile(t, Microsecond, LinkTypeEthernet, 1500, nil)
	if got := binary.LittleEndian.Uint32(b); got != MagicMicroseconds {
		t.Errorf("magic %#x, want %#x", got, MagicMicroseconds)
	}
	if got := binary.LittleEndian.Uint32(b[16:]); got != 1500 {
		t.Errorf("snaplen %d", got)
	}
}

func TestRoundTrip(t *testing.T) {
	for _, res := range []Resolution{Nanosecond, Microsecond} {
		for _, link := range []uint32{LinkTypeRaw, LinkTypeEthernet} {
			t.Run(fmt.Sprintf("%v-%d", res, link), func(t *testing.T) {
				pkts := samplePackets(link)
				pkts[1].origLen = 9000 // a truncated capture
				b := writeFile(t, res, link, 0, pkts)
				r, err := NewReader(bytes.NewReader(b))
				if err != nil {
					t.Fatal(err)
				}
				if r.LinkType() != link || r.Snaplen() != DefaultSnaplen || r.Resolution() != res {
					t.Fatalf("header: link %d snaplen %d res %v", r.LinkType(), r.Snaplen(), r.Resolution())
				}
				if maj, min := r.Version(); maj != 2 || min != 4 {
					t.Fatalf("version %d.%d", maj, min)
				}
				for i, want := range pkts {
					got, err := r.ReadPacket()
					if err != nil {
						t.Fatalf("packet %d: %v", i, err)
					}
					wantTS := want.ts
					if res == Microsecond {
						wantTS = wantTS.Truncate(time.Microsecond)
					}
					if !got.Timestamp.Equal(wantTS) {
						t.Errorf("packet %d: ts %v, want %v", i, got.Timestamp, wantTS)
					}
					if !bytes.Equal(got.Data, want.data) {
						t.Errorf("packet %d: data differs", i)
					}
					wantLen := max(want.origLen, len(want.data))
					if got.OrigLen != wantLen {
						t.Errorf("packet %d: origLen %d, want %d", i, got.OrigLen, wantLen)
					}
				}
				if _, err := r.ReadPacket(); err != io.EOF {
					t.Fatalf("after last packet: %v, want io.EOF", err)
				}
			})
		}
	}
}

func TestSnaplenTruncates(t *testing.T) {
	data := bytes.Repeat([]byte{0xab}, 100)
	b := writeFile(t, Nanosecond, LinkTypeRaw, 64, []testPacket{{ts: time.Unix(1, 0), data: data}})
	r, err := NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	p, err := r.ReadPacket()
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Data) != 64 || p.OrigLen != 100 {
		t.Fatalf("caplen %d origLen %d, want 64 100", len(p.Data), p.OrigLen)
	}
}

// TestReadBigEndian reads a file as written by a big-endian host.
func TestReadBigEndian(t *testing.T) {
	be := binary.BigEndian
	var b []byte
	b = be.AppendUint32(b, MagicMicroseconds)
	b = be.AppendUint16(b, 2)
	b = be.AppendUint16(b, 4)
	b = append(b, make([]byte, 8)...)
	b = be.AppendUint32(b, 65535)
	b = be.AppendUint32(b, LinkTypeEthernet|0x10000000) // FCS bits set
	b = be.AppendUint32(b, 5)
	b = be.AppendUint32(b, 7)
	b = be.AppendUint32(b, 3)
	b = be.AppendUint32(b, 60)
	b = append(b, 1, 2, 3)
	r, err := NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if r.LinkType() != LinkTypeEthernet || r.Snaplen() != 65535 || r.Resolution() != Microsecond {
		t.Fatalf("header: link %d snaplen %d res %v", r.LinkType(), r.Snaplen(), r.Resolution())
	}
	p, err := r.ReadPacket()
	if err != nil {
		t.Fatal(err)
	}
	if !p.Timestamp.Equal(time.Unix(5, 7000)) || !bytes.Equal(p.Data, []byte{1, 2, 3}) || p.OrigLen != 60 {
		t.Fatalf("packet %+v", p)
	}
}

func TestWriterErrors(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriter(&buf, Nanosecond)
	if err := w.WritePacket(time.Unix(1, 0), []byte{1}, 0); err == nil {
		t.Error("WritePacket before WriteHeader succeeded")
	}
	if err := w.WriteHeader(LinkTypeRaw, 0); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteHeader(LinkTypeRaw, 0); err == nil {
		t.Error("second WriteHeader succeeded")
	}
	if err := w.WritePacket(time.Time{}, []byte{1}, 0); err == nil {
		t.Error("zero time.Time accepted")
	}
	if err := NewWriter(&buf, Resolution(7)).WriteHeader(LinkTypeRaw, 0); err == nil {
		t.Error("bad resolution accepted")
	}
}

func TestReaderErrors(t *testing.T) {
	good := writeFile(t, Nanosecond, LinkTypeRaw, 0, samplePackets(LinkTypeRaw)[:1])
	cases := map[string][]byte{
		"empty":           nil,
		"short header":    good[:10],
		"bad magic":       append([]byte{1, 2, 3, 4}, good[4:]...),
		"short record":    good[:fileHeaderLen+8],
		"short data":      good[:len(good)-1],
		"bad version":     append(append(append([]byte{}, good[:4]...), 3, 0), good[6:]...),
		"huge caplen":     append(append(append([]byte{}, good[:fileHeaderLen+8]...), 0xff, 0xff, 0xff, 0x7f), good[fileHeaderLen+12:]...),
		"bad ns fraction": append(append(append([]byte{}, good[:fileHeaderLen+4]...), 0xff, 0xff, 0xff, 0xff), good[fileHeaderLen+8:]...),
	}
	for name, b := range cases {
		t.Run(name, func(t *testing.T) {
			r, err := NewReader(bytes.NewReader(b))
			if err == nil {
				_, err = r.ReadPacket()
			}
			if err == nil || err == io.EOF {
				t.Fatalf("got %v, want an error", err)
			}
			if strings.HasPrefix(name, "short") && !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Errorf("got %v, want io.ErrUnexpectedEOF", err)
			}
		})
	}
}

// TestTcpdumpReadable proves that tcpdump accepts the files (skipped when
// tcpdump is not installed).
func TestTcpdumpReadable(t *testing.T) {
	tcpdump, err := exec.LookPath("tcpdump")
	if err != nil {
		t.Skip("tcpdump not installed")
	}
	for _, tc := range []struct {
		name string
		res  Resolution
		link uint32
		// tcpdump's --time-stamp-precision for the expected timestamp.
		precision, ts string
		linkName      string
	}{
		{"raw-nano", Nanosecond, LinkTypeRaw, "nano", "1700000000.123456789", "RAW"},
		{"ether-nano", Nanosecond, LinkTypeEthernet, "nano", "1700000000.123456789", "EN10MB"},
		{"raw-micro", Microsecond, LinkTypeRaw, "micro", "1700000000.123456", "RAW"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), tc.name+".pcap")
			if err := os.WriteFile(file, writeFile(t, tc.res, tc.link, 0, samplePackets(tc.link)), 0o644); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(tcpdump, "-nr", file, "-tt", "--time-stamp-precision="+tc.precision)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("tcpdump: %v\n%s", err, stderr.String())
			}
			if !strings.Contains(stderr.String(), "link-type "+tc.linkName) {
				t.Errorf("tcpdump stderr %q does not mention link-type %s", stderr.String(), tc.linkName)
			}
			lines := strings.Split(strings.TrimSpace(string(out)), "\n")
			if len(lines) != 3 {
				t.Fatalf("tcpdump printed %d lines, want 3:\n%s", len(lines), out)
			}
			if !strings.HasPrefix(lines[0], tc.ts+" ") {
				t.Errorf("first line %q does not start with timestamp %s", lines[0], tc.ts)
			}
			for i, l := range lines {
				want := "IP 10.0.0.1." + []string{"1000", "1001", "1002"}[i] + " > 10.0.0." + []string{"2", "3", "4"}[i] + ".53:"
				if !strings.Contains(l, want) {
					t.Errorf("line %d %q does not contain %q", i, l, want)
				}
			}
		})
	}
}
