package cniplugin

import (
	"log/slog"
	"net"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/utils"
)

// FuzzParseConfig: ParseConfig never panics; it rejects with a code-2, -6
// or -7 error saying "invalid config: ", or accepts a configuration that
// satisfies every documented limit, deterministically.
func FuzzParseConfig(f *testing.F) {
	for _, s := range []string{
		`{"cniVersion":"1.1.0","name":"vecnet","type":"vecnet"}`,
		`{"cniVersion":"1.1.0","name":"vecnet","type":"vecnet","agentSocket":"/run/vecnet/cni.sock","timeout":"30s","logLevel":"warn"}`,
		`{"name":"n","type":"vecnet","mtu":9000,"timeout":12.5,"logFile":"/var/log/x","dns":{"nameservers":["10.0.0.10"]}}`,
		`{"name":"n","type":"vecnet","runtimeConfig":{"ips":["10.0.0.1/24","fd00::1"],"mac":"02:00:00:00:00:01","io.kubernetes.cri.pod-annotations":{"a":"b"}}}`,
		`{"name":"n","type":"vecnet","args":{"cni":{"ips":["10.0.0.1"]}},"ipam":{}}`,
		`{"name":"n","type":"vecnet","cni.dev/valid-attachments":[{"containerID":"c","ifname":"eth0"}]}`,
		`{"name":"n","type":"vecnet","prevResult":{"cniVersion":"1.1.0","ips":[{"address":"10.1.0.5/32"}]}}`,
		`{"cniVersion":"0.4.0","name":"n","type":"vecnet","prevResult":{"ips":[{"version":"4","address":"10.1.0.5/32"}]}}`,
		`{"name":"n","type":"vecnet","mtu":1e3}`,
		`{"name":"n","type":"vecnet","timeout":"-1s"}`,
		`{"name":"n","type":"vecnet","ipam":{"type":"host-local"}}`,
		`[]`, `null`, `{`, `{"name":"n","type":"vecnet","dns":{"nameservers":[1]}}`,
	} {
		f.Add([]byte(s))
	}
	levels := map[slog.Level]bool{slog.LevelDebug: true, slog.LevelInfo: true, slog.LevelWarn: true, slog.LevelError: true}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseConfig(data)
		if err != nil {
			if c != nil {
				t.Fatal("config and error")
			}
			if err.Code != 2 && err.Code != 6 && err.Code != 7 {
				t.Fatalf("code %d: %s", err.Code, err.Msg)
			}
			if !strings.HasPrefix(err.Msg, "invalid config: ") {
				t.Fatalf("message %q", err.Msg)
			}
			return
		}
		if c.Type != PluginType {
			t.Fatalf("type %q", c.Type)
		}
		if c.Name == "" || utils.ValidateNetworkName(c.Name) != nil {
			t.Fatalf("name %q", c.Name)
		}
		if !filepath.IsAbs(c.AgentSocket) || len(c.AgentSocket) > maxSocketPath || strings.IndexByte(c.AgentSocket, 0) >= 0 {
			t.Fatalf("agentSocket %q", c.AgentSocket)
		}
		if c.Timeout < 1e6 || c.Timeout > MaxTimeout {
			t.Fatalf("timeout %v", c.Timeout)
		}
		if c.MTU != 0 && (c.MTU < MinMTU || c.MTU > MaxMTU) {
			t.Fatalf("mtu %d", c.MTU)
		}
		if c.LogFile != "" && !filepath.IsAbs(c.LogFile) {
			t.Fatalf("logFile %q", c.LogFile)
		}
		if !levels[c.LogLevel] {
			t.Fatalf("logLevel %v", c.LogLevel)
		}
		for _, ns := range c.DNS.Nameservers {
			if net.ParseIP(ns) == nil {
				t.Fatalf("nameserver %q", ns)
			}
		}
		for _, ip := range c.IPs {
			if !validIPOrCIDR(ip) {
				t.Fatalf("ip %q", ip)
			}
		}
		if c.MAC != "" {
			if _, err := net.ParseMAC(c.MAC); err != nil {
				t.Fatalf("mac %q", c.MAC)
			}
		}
		if !c.HasValidAttachments && len(c.ValidAttachments) > 0 {
			t.Fatal("attachments without HasValidAttachments")
		}
		for _, a := range c.ValidAttachments {
			if a.ContainerID == "" || a.IfName == "" {
				t.Fatalf("attachment %+v", a)
			}
		}
		if !sort.StringsAreSorted(c.UnknownKeys) {
			t.Fatalf("unknown keys not sorted: %v", c.UnknownKeys)
		}
		for _, k := range c.UnknownKeys {
			if knownKeys[k] || strings.HasPrefix(k, "cni.dev/") {
				t.Fatalf("known key %q reported unknown", k)
			}
		}
		if string(c.Raw) != string(data) {
			t.Fatal("Raw differs from the input")
		}
		again, err := ParseConfig(data)
		if err != nil || !reflect.DeepEqual(c, again) {
			t.Fatalf("not deterministic: %v", err)
		}
		// Must not panic; errors are fine.
		if prev, perr := c.PrevResult(); perr == nil && prev != nil {
			_ = FromCNIResult(prev, "eth0")
		}
	})
}

// FuzzParseCNIArgs: no panic; accepted pairs round-trip through All.
func FuzzParseCNIArgs(f *testing.F) {
	for _, s := range []string{"", "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0", "IP=10.0.0.1,fd00::1", "a", "=b;", "A=;B==C"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := ParseCNIArgs(s)
		if err != nil {
			if err.Code != 4 || !strings.Contains(err.Msg, "CNI_ARGS") {
				t.Fatalf("error %d %q", err.Code, err.Msg)
			}
			_ = parseCNIArgsLenient(s)
			return
		}
		for k, v := range a.All {
			if k == "" || strings.Contains(k, "=") || strings.Contains(k, ";") || strings.Contains(v, ";") {
				t.Fatalf("pair %q=%q", k, v)
			}
		}
		if a.Pod.Name != a.All["K8S_POD_NAME"] || a.Pod.Namespace != a.All["K8S_POD_NAMESPACE"] {
			t.Fatal("pod fields")
		}
		for _, ip := range a.IPs {
			if !validIPOrCIDR(ip) {
				t.Fatalf("ip %q", ip)
			}
		}
	})
}
