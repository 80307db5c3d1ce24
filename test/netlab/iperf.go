package netlab

import (
	"context"
	"testing"

	"github.com/vecnet/vecnet/pkg/lab/baseline"
)

// Iperf3 runs one iperf3 test from clientNS to addr, served by a one-shot
// server started in serverNS, and returns the receiver's bits per second.
// args are extra client flags (e.g. "-P", "4"). It is baseline.Iperf3
// (which waits for the server to listen, bounds the client and kills the
// server on every path) failing the test on an error.
func Iperf3(t testing.TB, clientNS, serverNS, addr string, secs int, args ...string) float64 {
	t.Helper()
	bps, err := baseline.Iperf3(context.Background(), clientNS, serverNS, addr, secs, args...)
	if err != nil {
		t.Fatalf("iperf3 to %s moved no data: %v", addr, err)
	}
	return bps
}
