package lab

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestPrefix(t *testing.T) {
	a, b := Prefix("/var/lib/vecnet-lab"), Prefix("/tmp/x/lab")
	if a == b || !strings.HasPrefix(a, "vnlab-") || !strings.HasSuffix(a, "-") {
		t.Errorf("prefixes %q %q: want distinct vnlab-XXXX- names", a, b)
	}
	if Prefix("/var/lib/vecnet-lab/") != a {
		t.Error("a trailing slash changes the prefix: down would miss the namespaces")
	}
	// Pod namespaces: prefix + "pod-" + 12 characters, well under the
	// limits of file names.
	if n := len(a + "pod-" + "0123456789ab"); n > 40 {
		t.Errorf("pod netns names are %d bytes", n)
	}
}

func TestValidate(t *testing.T) {
	good := Config{Nodes: 3, Encap: "vxlan", Driver: "tap", StateDir: "/var/lib/vecnet-lab", Timeout: time.Minute}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, mod := range map[string]func(c *Config){
		"--nodes":     func(c *Config) { c.Nodes = 0 },
		"--nodes 17":  func(c *Config) { c.Nodes = MaxNodes + 1 },
		"--encap":     func(c *Config) { c.Encap = "gre" },
		"--driver":    func(c *Config) { c.Driver = "dpdk" },
		"--state-dir": func(c *Config) { c.StateDir = "relative" },
		"too long":    func(c *Config) { c.StateDir = "/" + strings.Repeat("x", 90) },
		"--timeout":   func(c *Config) { c.Timeout = 0 },
	} {
		c := good
		mod(&c)
		err := c.Validate()
		want := strings.Fields(name)[0]
		if want == "too" {
			want = "too long"
		}
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: err %v, want one naming %q", name, err, want)
		}
	}
}

func TestRefersTo(t *testing.T) {
	p := procInfo{args: []string{"/bin/vecnet-agent", "--cni-socket", "/var/lib/vecnet-lab/nodes/node1/cni.sock"}}
	if !p.refersTo("/var/lib/vecnet-lab") {
		t.Error("path under the dir not found")
	}
	if p.refersTo("/var/lib/vecnet") {
		t.Error("a directory whose name is a prefix of the state dir matched")
	}
	p = procInfo{args: []string{"etcd", "--data-dir=/s/kube/etcd-data"}}
	if !p.refersTo("/s") {
		t.Error("--flag=path not matched")
	}
	p = procInfo{exe: "vecnet-lab", args: []string{"vecnet-lab", "--state-dir", "/s", "down"}}
	if p.isLabProcess("/s") {
		t.Error("`vecnet-lab down` is taken for a lab process: down would kill itself")
	}
	p.args[3] = "serve"
	if !p.isLabProcess("/s") {
		t.Error("the supervisor is not a lab process")
	}
	p = procInfo{exe: "tail", args: []string{"tail", "-f", "/s/serve.log"}}
	if p.isLabProcess("/s") {
		t.Error("a user's tail -f of a lab log is taken for a lab process")
	}
}

func TestCheckStateDir(t *testing.T) {
	dir := t.TempDir()
	if err := checkStateDir(filepath.Join(dir, "none")); err != nil {
		t.Errorf("missing dir: %v", err)
	}
	if err := checkStateDir(dir); err != nil {
		t.Errorf("empty dir: %v", err)
	}
	os.WriteFile(filepath.Join(dir, "thesis.tex"), nil, 0o644)
	if err := checkStateDir(dir); err == nil {
		t.Error("a directory of someone else's files is accepted: down would remove it")
	}
	os.WriteFile(layout{dir}.marker(), nil, 0o644)
	if err := checkStateDir(dir); err != nil {
		t.Errorf("marked dir: %v", err)
	}
}

func TestValidateBGP(t *testing.T) {
	c := Config{Nodes: 2, Encap: "bgp", Driver: "tap", StateDir: "/var/lib/vecnet-lab", Timeout: time.Minute}
	if err := c.Validate(); err != nil || !c.BGP() {
		t.Fatalf("--encap bgp: %v (BGP %v)", err, c.BGP())
	}
	// The proxy's address is in the underlay subnet and no node's.
	for i := 1; i <= MaxNodes; i++ {
		if v4, _ := NodeAddrs(i); v4 == APIProxyAddr4 {
			t.Fatalf("node %d has the API proxy's address %s", i, v4)
		}
	}
	if !strings.HasPrefix(APIProxyAddr4, "192.168.77.") {
		t.Errorf("API proxy address %s is outside the underlay 192.168.77.0/24", APIProxyAddr4)
	}
}

func TestParseShowBGP(t *testing.T) {
	out := `BGP speaker at 127.0.0.1:50051: AS 64512, router ID 192.168.77.1, listen port 179 on 0.0.0.0, ::

Peers
Peer          AS     Type  State        Since
192.168.77.2  64512  iBGP  Established  10s
fd00:77::2    64512  iBGP  Active
192.168.77.3  64512        Idle(Admin)  1m2s

Prefixes
Peer          Family        Received  Accepted  Advertised
192.168.77.2  ipv4-unicast  1         1         1
`
	sum, peers := parseShowBGP(out)
	if !strings.HasPrefix(sum, "BGP speaker at 127.0.0.1:50051: AS 64512") {
		t.Errorf("summary %q", sum)
	}
	want := []BGPPeer{
		{"192.168.77.2", "64512", "iBGP", "Established", "10s"},
		{"fd00:77::2", "64512", "iBGP", "Active", ""},
		{"192.168.77.3", "64512", "", "Idle(Admin)", "1m2s"},
	}
	if len(peers) != len(want) {
		t.Fatalf("peers %+v, want %+v", peers, want)
	}
	for i := range want {
		if peers[i] != want[i] {
			t.Errorf("peer %d: %+v, want %+v", i, peers[i], want[i])
		}
	}
	if _, peers := parseShowBGP("BGP speaker at x: AS 1\n\nPeers\nPeer  AS  Type  State  Since\n"); len(peers) != 0 {
		t.Errorf("no peers: got %+v", peers)
	}
	if _, peers := parseShowBGP("garbage"); peers != nil {
		t.Errorf("garbage: got %+v", peers)
	}
}
