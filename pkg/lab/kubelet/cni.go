package kubelet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/containernetworking/cni/libcni"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"k8s.io/apimachinery/pkg/types"
)

// cniTimeout bounds one CNI call. The vecnet plugin gives up on the agent
// after its own "timeout" (30s by default); this only catches a plugin that
// hangs.
const cniTimeout = 60 * time.Second

// podRecord is what the kubelet set up for a pod, written to
// RunDir/pods/<uid>.json before the namespace is made and removed once all
// of it is undone. It lets a restarted kubelet tear down pods that vanished
// while it was not running, without guessing from namespace names (which
// other lab nodes may share a prefix with).
type podRecord struct {
	Namespace   string    `json:"namespace"`
	Name        string    `json:"name"`
	UID         types.UID `json:"uid"`
	Netns       string    `json:"netns,omitempty"` // "" for hostNetwork pods
	ContainerID string    `json:"containerID"`
}

// ContainerID is the CNI container id of a pod: its UID without dashes.
// It is stable, so a DEL after a kubelet restart names the same attachment
// (and finds libcni's cached result) as the ADD did.
func ContainerID(uid types.UID) string { return strings.ReplaceAll(string(uid), "-", "") }

func (k *kubelet) recordPath(uid types.UID) string {
	return filepath.Join(k.cfg.RunDir, "pods", string(uid)+".json")
}

func (k *kubelet) writeRecord(r *podRecord) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	p := k.recordPath(r.UID)
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, p)
}

func (k *kubelet) removeRecord(uid types.UID) {
	if err := os.Remove(k.recordPath(uid)); err != nil && !errors.Is(err, os.ErrNotExist) {
		k.log.Warn("cannot remove pod record", "uid", uid, "err", err)
	}
}

// readRecords returns the records in RunDir/pods.
func (k *kubelet) readRecords() ([]*podRecord, error) {
	files, err := filepath.Glob(filepath.Join(k.cfg.RunDir, "pods", "*.json"))
	if err != nil {
		return nil, err
	}
	var out []*podRecord
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		r := &podRecord{}
		if err := json.Unmarshal(b, r); err != nil || r.UID == "" {
			k.log.Warn("ignoring a pod record that does not parse", "file", f, "err", err)
			continue
		}
		out = append(out, r)
	}
	return out, nil
}

// runtimeConf is the CNI runtime configuration of a pod, as containerd
// builds it: pkg/cniplugin reads the K8S_POD_* arguments, and the agent
// checks K8S_POD_UID against the pod object so that a DEL or late ADD of a
// re-created pod of the same name cannot touch the new one.
func runtimeConf(r *podRecord, annotations map[string]string) *libcni.RuntimeConf {
	rt := &libcni.RuntimeConf{
		ContainerID: r.ContainerID,
		NetNS:       NetnsPath(r.Netns),
		IfName:      "eth0",
		Args: [][2]string{
			{"IgnoreUnknown", "1"},
			{"K8S_POD_NAMESPACE", r.Namespace},
			{"K8S_POD_NAME", r.Name},
			{"K8S_POD_INFRA_CONTAINER_ID", r.ContainerID},
			{"K8S_POD_UID", string(r.UID)},
		},
	}
	if annotations != nil {
		// Passed only to plugins that declare the capability, as
		// containerd does.
		rt.CapabilityArgs = map[string]any{"io.kubernetes.cri.pod-annotations": annotations}
	}
	return rt
}

// loadConfList reads the node's conflist for every call, so that a conflist
// written after the kubelet started (or fixed) is picked up, as the real
// kubelet/containerd pair does.
func (k *kubelet) loadConfList() (*libcni.NetworkConfigList, error) {
	conf, err := libcni.NetworkConfFromFile(k.cfg.CNIConfList)
	if err != nil {
		return nil, fmt.Errorf("CNI conflist %s: %w", k.cfg.CNIConfList, err)
	}
	return conf, nil
}

// cniAdd runs CNI ADD and returns the pod's addresses, IPv4 first. The
// call is not cut short when Run's context ends: an ADD abandoned half way
// is the agent's to roll back, but one that completes is simply adopted by
// the next Run.
func (k *kubelet) cniAdd(ctx context.Context, r *podRecord, annotations map[string]string) ([]string, error) {
	conf, err := k.loadConfList()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cniTimeout)
	defer cancel()
	res, err := k.cni.AddNetworkList(ctx, conf, runtimeConf(r, annotations))
	if err != nil {
		return nil, fmt.Errorf("CNI ADD (%s): %w", conf.Name, err)
	}
	res100, err := types100.NewResultFromResult(res)
	if err != nil {
		return nil, fmt.Errorf("CNI ADD (%s): result: %w", conf.Name, err)
	}
	var ips []netip.Addr
	for _, ipc := range res100.IPs {
		if a, ok := netip.AddrFromSlice(ipc.Address.IP); ok {
			ips = append(ips, a.Unmap())
		}
	}
	if len(ips) == 0 {
		return nil, fmt.Errorf("CNI ADD (%s): the result has no IP address", conf.Name)
	}
	return podIPs(ips), nil
}

// cniDel runs CNI DEL with the same arguments as the ADD. libcni passes
// the ADD's cached result as prevResult, which is how the vecnet plugin
// tells "nothing to release" from "agent unreachable, try again".
func (k *kubelet) cniDel(ctx context.Context, r *podRecord) error {
	conf, err := k.loadConfList()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cniTimeout)
	defer cancel()
	if err := k.cni.DelNetworkList(ctx, conf, runtimeConf(r, nil)); err != nil {
		return fmt.Errorf("CNI DEL (%s): %w", conf.Name, err)
	}
	return nil
}

// podIPs picks the pod's addresses from a CNI result: the first of each
// family, IPv4 first (the API takes at most one per family, and the first
// is status.podIP).
func podIPs(ips []netip.Addr) []string {
	var v4, v6 string
	for _, a := range ips {
		switch {
		case a.Is4() && v4 == "":
			v4 = a.String()
		case a.Is6() && v6 == "":
			v6 = a.String()
		}
	}
	var out []string
	for _, s := range []string{v4, v6} {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}
