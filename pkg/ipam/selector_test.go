package ipam

import (
	"testing"

	v3 "github.com/vecnet/vecnet/pkg/apis/projectcalico/v3"
)

func TestPoolSelectsNode(t *testing.T) {
	labels := map[string]string{"kubernetes.io/hostname": "node1", "zone": "a"}
	for sel, want := range map[string]bool{
		"": true, "all()": true, "kubernetes.io/hostname == 'node1'": true, "zone in {'b'}": false,
		"has(zone) && !has(edge)": true, "zone = 'a'": false, // invalid: selects nothing
	} {
		if got := PoolSelectsNode(&v3.IPPoolSpec{NodeSelector: sel}, labels); got != want {
			t.Errorf("%q: %v, want %v", sel, got, want)
		}
	}
	if _, err := ParseSelector("has(a) ||"); err == nil {
		t.Error("ParseSelector accepted a bad selector")
	}
}
