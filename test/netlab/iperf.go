package netlab

import (
	"encoding/json"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// Ports are per network namespace, so a counter is enough to keep the
// one-shot servers of consecutive tests apart.
var iperfPort atomic.Int32

func init() { iperfPort.Store(5200) }

// Iperf3 runs one iperf3 test from clientNS to addr, served by a one-shot
// server started in serverNS, and returns the receiver's bits per second.
// args are extra client flags (e.g. "-P", "4").
func Iperf3(t testing.TB, clientNS, serverNS, addr string, secs int, args ...string) float64 {
	t.Helper()
	port := strconv.Itoa(int(iperfPort.Add(1)))
	Background(t, serverNS, "iperf3", "-s", "-1", "-p", port)
	client := append([]string{"-J", "-c", addr, "-p", port, "-t", strconv.Itoa(secs)}, args...)
	var out string
	// The server needs a moment to listen; retry only that failure.
	for i := 0; i < 50; i++ {
		out, _ = InNetns(clientNS, "iperf3", client...)
		if !strings.Contains(out, "unable to connect") {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	var res struct {
		Error string `json:"error"`
		End   struct {
			SumReceived struct {
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		} `json:"end"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil || res.Error != "" || res.End.SumReceived.BitsPerSecond <= 0 {
		t.Fatalf("iperf3 to %s moved no data: %v %s\n%s", addr, err, res.Error, out)
	}
	return res.End.SumReceived.BitsPerSecond
}
