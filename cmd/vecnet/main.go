// Command vecnet is vecnet's CNI plugin. The container runtime runs it for
// every pod (CNI spec 1.1: ADD, DEL, CHECK, STATUS, GC, VERSION); it
// forwards each request to vecnet-agent over gRPC on a unix socket and
// prints the CNI result or error. Install it in the runtime's CNI bin
// directory (/opt/cni/bin) and a configuration list such as
// deploy/cni/10-vecnet.conflist in its configuration directory
// (/etc/cni/net.d). The logic is in pkg/cniplugin.
package main

import (
	"github.com/containernetworking/cni/pkg/skel"

	"github.com/vecnet/vecnet/pkg/cniplugin"
)

func main() {
	p := &cniplugin.Plugin{}
	skel.PluginMainFuncs(p.Funcs(), cniplugin.SupportedVersions, cniplugin.About())
}
