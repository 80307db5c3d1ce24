package cniplugin

import (
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/types"
)

func TestParseConfigDefaults(t *testing.T) {
	c, err := ParseConfig([]byte(`{"cniVersion":"1.1.0","name":"vecnet","type":"vecnet"}`))
	if err != nil {
		t.Fatal(err)
	}
	if c.AgentSocket != DefaultAgentSocket || c.Timeout != DefaultTimeout || c.LogLevel != DefaultLogLevel ||
		c.MTU != 0 || c.LogFile != "" || c.RawPrevResult != nil || c.HasValidAttachments || len(c.UnknownKeys) != 0 {
		t.Fatalf("defaults: %+v", c)
	}
}

func TestParseConfigAll(t *testing.T) {
	c, err := ParseConfig([]byte(`{
		"cniVersion": "1.1.0", "name": "net-1", "type": "vecnet",
		"agentSocket": "/var/run/x/agent.sock", "mtu": 9000, "timeout": "1m30s",
		"logLevel": "DEBUG", "logFile": "/var/log/vecnet/cni.log",
		"dns": {"nameservers": ["10.96.0.10", "fd00::a"], "search": ["svc.cluster.local"]},
		"ipam": {},
		"capabilities": {"ips": true},
		"runtimeConfig": {"ips": ["10.1.0.5/32", "fd00::5"], "mac": "c2:11:22:33:44:55",
			"io.kubernetes.cri.pod-annotations": {"a": "b"}, "portMappings": [{"hostPort": 1}]},
		"args": {"cni": {"ips": ["10.9.9.9"]}},
		"prevResult": {"cniVersion": "1.1.0", "ips": [{"address": "10.1.0.5/32"}]},
		"cni.dev/valid-attachments": [{"containerID": "c1", "ifname": "eth0"}],
		"cni.dev/attachments": [{"containerID": "c1", "ifname": "eth0"}],
		"someOtherKey": 1, "agent_socket": "/typo"
	}`))
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		CNIVersion: "1.1.0", Name: "net-1", Type: "vecnet",
		DNS:         types.DNS{Nameservers: []string{"10.96.0.10", "fd00::a"}, Search: []string{"svc.cluster.local"}},
		AgentSocket: "/var/run/x/agent.sock", MTU: 9000, Timeout: 90 * time.Second,
		LogLevel: slog.LevelDebug, LogFile: "/var/log/vecnet/cni.log",
		IPs: []string{"10.1.0.5/32", "fd00::5"}, MAC: "c2:11:22:33:44:55",
		PodAnnotations:      map[string]string{"a": "b"},
		ValidAttachments:    []types.GCAttachment{{ContainerID: "c1", IfName: "eth0"}},
		HasValidAttachments: true,
		UnknownKeys:         []string{"agent_socket", "someOtherKey"},
	}
	got := *c
	if got.RawPrevResult == nil {
		t.Fatal("prevResult not kept")
	}
	got.RawPrevResult, got.Raw = nil, nil
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got  %+v\nwant %+v", got, want)
	}
	prev, perr := c.PrevResult()
	if perr != nil || len(prev.IPs) != 1 || prev.IPs[0].Address.String() != "10.1.0.5/32" {
		t.Fatalf("PrevResult: %v %+v", perr, prev)
	}
}

func TestParseConfigArgsIPs(t *testing.T) {
	c, err := ParseConfig([]byte(`{"name":"n","type":"vecnet","args":{"cni":{"ips":["10.2.2.42/24"]}}}`))
	if err != nil || !reflect.DeepEqual(c.IPs, []string{"10.2.2.42/24"}) {
		t.Fatalf("%v %v", err, c)
	}
	// args not shaped as the convention says are ignored.
	for _, args := range []string{`"x"`, `{"cni":1}`, `{"other":{"ips":1}}`} {
		if _, err := ParseConfig([]byte(`{"name":"n","type":"vecnet","args":` + args + `}`)); err != nil {
			t.Errorf("args %s: %v", args, err)
		}
	}
}

func TestParseConfigTimeout(t *testing.T) {
	for in, want := range map[string]time.Duration{`"5s"`: 5 * time.Second, `10`: 10 * time.Second, `0.5`: 500 * time.Millisecond, `"10m"`: 10 * time.Minute} {
		c, err := ParseConfig([]byte(`{"name":"n","type":"vecnet","timeout":` + in + `}`))
		if err != nil || c.Timeout != want {
			t.Errorf("timeout %s: %v %v", in, c, err)
		}
	}
}

func TestParseConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		conf string
		code uint
		msg  string
	}{
		{`[]`, 6, "not a JSON object"},
		{`null`, 6, "not a JSON object"},
		{`{"type":"vecnet"}`, 7, `"name" is missing`},
		{`{"name":"a b","type":"vecnet"}`, 7, `"name" "a b" must start`},
		{`{"name":"n"}`, 7, `"type" must be "vecnet", got ""`},
		{`{"name":"n","type":"bridge"}`, 7, `"type" must be "vecnet", got "bridge"`},
		{`{"name":"n","type":"vecnet","agentSocket":"run/cni.sock"}`, 7, `invalid config: "agentSocket" must be an absolute path, got "run/cni.sock"`},
		{`{"name":"n","type":"vecnet","agentSocket":""}`, 7, `"agentSocket" must not be empty`},
		{`{"name":"n","type":"vecnet","agentSocket":"/` + strings.Repeat("x", 107) + `"}`, 7, `"agentSocket" is 108 bytes long`},
		{`{"name":"n","type":"vecnet","agentSocket":5}`, 7, `"agentSocket" must be a string, got number`},
		{`{"name":"n","type":"vecnet","mtu":"1500"}`, 7, `"mtu" must be an integer from 68 to 65535`},
		{`{"name":"n","type":"vecnet","mtu":1500.5}`, 7, `"mtu" must be an integer`},
		{`{"name":"n","type":"vecnet","mtu":65536}`, 7, `"mtu" must be from 68 to 65535 (or 0 for the agent's default), got 65536`},
		{`{"name":"n","type":"vecnet","mtu":-1}`, 7, `"mtu" must be from 68`},
		{`{"name":"n","type":"vecnet","timeout":"30"}`, 7, `"timeout" must be a duration such as "30s"`},
		{`{"name":"n","type":"vecnet","timeout":"0s"}`, 7, `"timeout" must be`},
		{`{"name":"n","type":"vecnet","timeout":-3}`, 7, `"timeout" must be`},
		{`{"name":"n","type":"vecnet","timeout":"11m"}`, 7, `"timeout" must be`},
		{`{"name":"n","type":"vecnet","timeout":true}`, 7, `"timeout" must be`},
		{`{"name":"n","type":"vecnet","logLevel":"verbose"}`, 7, `"logLevel" must be one of debug, info, warn, error; got "verbose"`},
		{`{"name":"n","type":"vecnet","logFile":"cni.log"}`, 7, `"logFile" must be an absolute path`},
		{`{"name":"n","type":"vecnet","dns":{"nameservers":["dns.example"]}}`, 7, `"dns.nameservers[0]" must be an IP address, got "dns.example"`},
		{`{"name":"n","type":"vecnet","dns":{"nameservers":[1]}}`, 7, `"dns.nameservers" must be a string, got number`},
		{`{"name":"n","type":"vecnet","dns":[]}`, 7, `"dns" must be an object, got array`},
		{`{"name":"n","type":"vecnet","ipam":{"type":"host-local"}}`, 2, `"ipam" is not supported`},
		{`{"name":"n","type":"vecnet","runtimeConfig":{"ips":["10.0.0.300"]}}`, 7, `"runtimeConfig.ips[0]" must be an IP address or CIDR, got "10.0.0.300"`},
		{`{"name":"n","type":"vecnet","runtimeConfig":{"ips":"10.0.0.1"}}`, 7, `"runtimeConfig.ips" must be a list of strings, got string`},
		{`{"name":"n","type":"vecnet","runtimeConfig":{"mac":"zz"}}`, 7, `"runtimeConfig.mac" must be a MAC address`},
		{`{"name":"n","type":"vecnet","runtimeConfig":7}`, 7, `"runtimeConfig" must be an object`},
		{`{"name":"n","type":"vecnet","args":{"cni":{"ips":["x"]}}}`, 7, `"args.cni.ips[0]" must be an IP address or CIDR`},
		{`{"name":"n","type":"vecnet","cni.dev/valid-attachments":[{"containerID":"c"}]}`, 7, `"cni.dev/valid-attachments[0]" needs both "containerID" and "ifname"`},
		{`{"name":"n","type":"vecnet","cni.dev/valid-attachments":{}}`, 7, `"cni.dev/valid-attachments" must be a list of objects, got object`},
	} {
		_, err := ParseConfig([]byte(tc.conf))
		if err == nil {
			t.Errorf("%s: accepted", tc.conf)
			continue
		}
		if err.Code != tc.code || !strings.Contains(err.Msg, tc.msg) {
			t.Errorf("%s:\n got  %d %q\n want %d %q", tc.conf, err.Code, err.Msg, tc.code, tc.msg)
		}
		if tc.code == 7 && !strings.HasPrefix(err.Msg, "invalid config: ") {
			t.Errorf("%s: message %q does not start with \"invalid config: \"", tc.conf, err.Msg)
		}
	}
}

func TestGCAttachmentsPresence(t *testing.T) {
	for conf, want := range map[string]bool{
		`{"name":"n","type":"vecnet"}`:                                                                false,
		`{"name":"n","type":"vecnet","cni.dev/valid-attachments":null}`:                               true,
		`{"name":"n","type":"vecnet","cni.dev/valid-attachments":[]}`:                                 true,
		`{"name":"n","type":"vecnet","cni.dev/attachments":[]}`:                                       true,
		`{"name":"n","type":"vecnet","cni.dev/valid-attachments":[{"containerID":"a","ifname":"b"}]}`: true,
	} {
		c, err := ParseConfig([]byte(conf))
		if err != nil || c.HasValidAttachments != want {
			t.Errorf("%s: %v %v", conf, err, c)
		}
	}
}

func TestPrevResultOldVersion(t *testing.T) {
	c, err := ParseConfig([]byte(`{"cniVersion":"0.4.0","name":"n","type":"vecnet","prevResult":{
		"interfaces":[{"name":"eth0","sandbox":"/var/run/netns/x"}],
		"ips":[{"version":"4","address":"10.1.0.5/32","gateway":"169.254.1.1","interface":0}],
		"routes":[{"dst":"0.0.0.0/0"}]}}`))
	if err != nil {
		t.Fatal(err)
	}
	prev, perr := c.PrevResult()
	if perr != nil {
		t.Fatal(perr)
	}
	got := FromCNIResult(prev, "eth0")
	if len(got.Ips) != 1 || got.Ips[0].Address != "10.1.0.5/32" || got.Ips[0].Gateway != "169.254.1.1" ||
		got.Ips[0].GetInterface() != 0 || got.Ips[0].Interface == nil || len(got.Routes) != 1 || got.Routes[0].Dst != "0.0.0.0/0" ||
		len(got.Interfaces) != 1 || got.Interfaces[0].Sandbox != "/var/run/netns/x" {
		t.Fatalf("%v", got)
	}
	c.RawPrevResult = []byte(`{"cniVersion":"1.1.0","ips":"x"}`)
	if _, perr := c.PrevResult(); perr == nil || perr.Code != types.ErrDecodingFailure {
		t.Fatalf("bad prevResult: %v", perr)
	}
}

func TestParseCNIArgs(t *testing.T) {
	a, err := ParseCNIArgs("IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0;K8S_POD_INFRA_CONTAINER_ID=abc;K8S_POD_UID=u-1;X=a=b;;IP=10.0.0.1/32, fd00::1")
	if err != nil {
		t.Fatal(err)
	}
	if a.Pod != (Pod{Namespace: "default", Name: "web-0", UID: "u-1", InfraContainerID: "abc"}) {
		t.Fatalf("pod %+v", a.Pod)
	}
	if a.All["X"] != "a=b" || a.All["IgnoreUnknown"] != "1" || len(a.All) != 7 {
		t.Fatalf("all %v", a.All)
	}
	if !reflect.DeepEqual(a.IPs, []string{"10.0.0.1/32", "fd00::1"}) {
		t.Fatalf("ips %v", a.IPs)
	}
	if a, err := ParseCNIArgs(""); err != nil || len(a.All) != 0 {
		t.Fatalf("empty: %v %v", a, err)
	}
	for _, bad := range []string{"K8S_POD_NAME", "=x", "IP=nope"} {
		if _, err := ParseCNIArgs(bad); err == nil || err.Code != types.ErrInvalidEnvironmentVariables || !strings.Contains(err.Msg, "CNI_ARGS") {
			t.Errorf("%q: %v", bad, err)
		}
	}
	l := parseCNIArgsLenient("K8S_POD_NAME=p;junk;IP=bad")
	if l.Pod.Name != "p" || len(l.IPs) != 0 {
		t.Fatalf("lenient %+v", l)
	}
}
