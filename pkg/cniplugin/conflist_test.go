package cniplugin

import (
	"slices"
	"testing"

	"github.com/containernetworking/cni/libcni"
)

// The example configuration list in deploy/cni loads with libcni (as
// containerd and CRI-O load it) and its vecnet entry is valid for the plugin.
func TestDeployConflist(t *testing.T) {
	list, err := libcni.ConfListFromFile("../../deploy/cni/10-vecnet.conflist")
	if err != nil {
		t.Fatal(err)
	}
	if list.Name != "vecnet" || list.CNIVersion != "1.1.0" || list.DisableCheck || list.DisableGC {
		t.Fatalf("list: name %q version %q disableCheck %v disableGC %v", list.Name, list.CNIVersion, list.DisableCheck, list.DisableGC)
	}
	if !slices.Contains(SupportedVersions.SupportedVersions(), list.CNIVersion) {
		t.Fatalf("cniVersion %s not supported by the plugin", list.CNIVersion)
	}
	if len(list.Plugins) == 0 || list.Plugins[0].Network.Type != PluginType {
		t.Fatal("vecnet must be the first plugin of the list")
	}
	for _, p := range list.Plugins {
		if p.Network.Type != PluginType {
			continue
		}
		// What the runtime passes on stdin (for STATUS/GC exactly this;
		// ADD/DEL/CHECK add runtimeConfig and prevResult).
		conf, err := libcni.InjectConf(p, map[string]interface{}{"name": list.Name, "cniVersion": list.CNIVersion})
		if err != nil {
			t.Fatal(err)
		}
		c, cerr := ParseConfig(conf.Bytes)
		if cerr != nil {
			t.Fatalf("%s: %v", conf.Bytes, cerr)
		}
		if len(c.UnknownKeys) > 0 {
			t.Errorf("unknown keys %v", c.UnknownKeys)
		}
		if c.AgentSocket != DefaultAgentSocket || c.Timeout != DefaultTimeout {
			t.Errorf("the example should show the defaults: %+v", c)
		}
	}
}
