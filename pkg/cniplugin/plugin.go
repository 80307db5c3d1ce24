// Package cniplugin is the vecnet CNI plugin (cmd/vecnet): it validates the
// runtime's request, forwards it to vecnet-agent over gRPC (api/cni/v1) on
// a unix socket, and turns the agent's answer into a CNI result or a CNI
// error a person can act on. It keeps no state of its own.
package cniplugin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/containernetworking/cni/pkg/ns"
	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	cniv1 "github.com/vecnet/vecnet/api/cni/v1"
)

// Version is the plugin's version, shown by `vecnet` run without
// CNI_COMMAND and sent as the gRPC user agent. Set with
// -ldflags "-X github.com/vecnet/vecnet/pkg/cniplugin.Version=...".
var Version = "dev"

// SupportedVersions are the CNI spec versions the plugin speaks. STATUS
// and GC need 1.1.0, CHECK 0.4.0 (the skel package enforces it).
var SupportedVersions = version.PluginSupports("0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")

// About is printed when the binary is run without CNI_COMMAND.
func About() string {
	return "CNI plugin vecnet " + Version + ": forwards to vecnet-agent (default socket " + DefaultAgentSocket + ")"
}

// Plugin implements the CNI commands. Its zero value writes results to
// os.Stdout and logs to os.Stderr.
type Plugin struct {
	Stdout io.Writer
	Stderr io.Writer
}

// Funcs returns the commands for skel.PluginMainFuncs.
func (p *Plugin) Funcs() skel.CNIFuncs {
	return skel.CNIFuncs{
		Add:    func(a *skel.CmdArgs) error { return p.run("ADD", a, p.add) },
		Del:    func(a *skel.CmdArgs) error { return p.run("DEL", a, p.del) },
		Check:  func(a *skel.CmdArgs) error { return p.run("CHECK", a, p.check) },
		Status: func(a *skel.CmdArgs) error { return p.run("STATUS", a, p.status) },
		GC:     func(a *skel.CmdArgs) error { return p.run("GC", a, p.gc) },
	}
}

// session is one invocation of the plugin.
type session struct {
	cmd  string
	args *skel.CmdArgs
	conf *Config
	log  *slog.Logger
}

// run parses the configuration, sets up logging, runs fn and logs its
// failure. The returned error is a *types.Error (or nil), which skel prints
// as the CNI error.
func (p *Plugin) run(cmd string, args *skel.CmdArgs, fn func(*session) *types.Error) error {
	conf, cerr := ParseConfig(args.StdinData)
	if cerr != nil {
		return cerr
	}
	log, closeLog := p.logger(conf)
	defer closeLog()
	log = log.With("cmd", cmd)
	if args.ContainerID != "" {
		log = log.With("container", args.ContainerID, "ifname", args.IfName)
	}
	if len(conf.UnknownKeys) > 0 {
		log.Warn("ignoring unknown configuration keys", "keys", strings.Join(conf.UnknownKeys, ","))
	}
	s := &session{cmd: cmd, args: args, conf: conf, log: log}
	start := time.Now()
	if err := fn(s); err != nil {
		// The runtime polls STATUS (containerd: for the node's
		// NetworkReady condition) and reports the failure itself.
		lvl := slog.LevelError
		if cmd == "STATUS" {
			lvl = slog.LevelInfo
		}
		s.log.Log(context.Background(), lvl, cmd+" failed", "code", err.Code, "error", err.Msg, "details", err.Details, "took", time.Since(start))
		return err
	}
	s.log.Debug(cmd+" done", "took", time.Since(start))
	return nil
}

// logger logs to conf.LogFile (appending; created with its directory if
// needed) or, without one or if it cannot be opened, to stderr, which the
// runtime puts in its own log.
func (p *Plugin) logger(conf *Config) (*slog.Logger, func()) {
	w := p.Stderr
	if w == nil {
		w = os.Stderr
	}
	closeFn := func() {}
	var openErr error
	if conf.LogFile != "" {
		if err := os.MkdirAll(filepath.Dir(conf.LogFile), 0o755); err != nil {
			openErr = err
		} else if f, err := os.OpenFile(conf.LogFile, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600); err != nil {
			openErr = err
		} else {
			w, closeFn = f, func() { f.Close() }
		}
	}
	log := slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: conf.LogLevel})).
		With("plugin", "vecnet", "pid", os.Getpid())
	if openErr != nil {
		log.Warn("cannot open logFile, logging to stderr", "logFile", conf.LogFile, "err", openErr)
	}
	return log, closeFn
}

// connect dials the agent with the configured timeout. The caller must call
// the returned cancel (which also closes the connection).
func (s *session) connect() (*agentConn, context.Context, func(), error) {
	ctx, cancel := context.WithTimeout(context.Background(), s.conf.Timeout)
	a, err := dialAgent(ctx, s.conf.AgentSocket)
	if err != nil {
		cancel()
		return nil, nil, func() {}, err
	}
	return a, ctx, func() { a.Close(); cancel() }, nil
}

func (s *session) agentError(err error) *types.Error {
	return agentError(s.cmd, s.conf.AgentSocket, s.conf.Timeout, err)
}

// attachment builds the request's Attachment. With lenient (DEL), items of
// CNI_ARGS that do not parse are skipped instead of failing: the agent finds
// an attachment by (network, container id, ifname), and a DEL must not get
// stuck on an argument its ADD already failed on.
func (s *session) attachment(lenient bool) (*cniv1.Attachment, *types.Error) {
	cargs, err := ParseCNIArgs(s.args.Args)
	if err != nil {
		if !lenient {
			return nil, err
		}
		s.log.Warn("ignoring CNI_ARGS that do not parse", "err", err.Msg)
		cargs = parseCNIArgsLenient(s.args.Args)
	}
	ips := s.conf.IPs
	if len(ips) == 0 {
		ips = cargs.IPs
	}
	if cargs.Pod.Name != "" {
		s.log = s.log.With("pod", cargs.Pod.Namespace+"/"+cargs.Pod.Name)
	}
	return &cniv1.Attachment{
		ContainerId: s.args.ContainerID,
		Netns:       s.args.Netns,
		Ifname:      s.args.IfName,
		Network:     s.conf.Name,
		CniVersion:  s.conf.CNIVersion,
		Config:      s.conf.Raw,
		Pod: &cniv1.KubernetesPod{
			Namespace:        cargs.Pod.Namespace,
			Name:             cargs.Pod.Name,
			Uid:              cargs.Pod.UID,
			InfraContainerId: cargs.Pod.InfraContainerID,
		},
		CniArgs: cargs.All,
		RuntimeConfig: &cniv1.RuntimeConfig{
			Ips:            ips,
			Mac:            s.conf.MAC,
			PodAnnotations: s.conf.PodAnnotations,
		},
		Options: &cniv1.PluginOptions{Mtu: s.conf.MTU},
	}, nil
}

// parseCNIArgsLenient parses what it can of CNI_ARGS.
func parseCNIArgsLenient(s string) *CNIArgs {
	var good []string
	for _, item := range strings.Split(s, ";") {
		if k, _, ok := strings.Cut(item, "="); ok && k != "" && k != "IP" {
			good = append(good, item)
		}
	}
	a, err := ParseCNIArgs(strings.Join(good, ";"))
	if err != nil {
		return &CNIArgs{All: map[string]string{}}
	}
	return a
}

// checkNetns checks that CNI_NETNS exists (ADD and CHECK).
func checkNetns(path string) *types.Error {
	if _, err := os.Stat(path); err != nil {
		what := "cannot be used: " + err.Error()
		if errors.Is(err, os.ErrNotExist) {
			what = "does not exist"
		}
		return types.NewError(types.ErrInvalidEnvironmentVariables, fmt.Sprintf("CNI_NETNS %s %s", path, what), "")
	}
	return nil
}

func (p *Plugin) stdout() io.Writer {
	if p.Stdout == nil {
		return os.Stdout
	}
	return p.Stdout
}

// add: ADD. vecnet creates the pod's interface, so it comes first in a
// plugin list and gets no prevResult.
func (p *Plugin) add(s *session) *types.Error {
	if s.conf.RawPrevResult != nil {
		return invalid(`vecnet creates the pod's interface and must be the first plugin of the list, but it was given the "prevResult" of a plugin before it`)
	}
	att, aerr := s.attachment(false)
	if aerr != nil {
		return aerr
	}
	if err := checkNetns(s.args.Netns); err != nil {
		return err
	}
	// skel makes this check too, but only after ADD returned: by then
	// vecnetd would have put a pod interface in the host's namespace.
	if o := strings.ToLower(s.args.NetnsOverride); o != "true" && o != "1" {
		if same, err := ns.CheckNetNS(s.args.Netns); err != nil {
			return err
		} else if same {
			return types.NewError(types.ErrInvalidEnvironmentVariables,
				fmt.Sprintf("CNI_NETNS %s is the plugin's own (the host's) network namespace, not a pod's", s.args.Netns), "")
		}
	}
	a, ctx, done, err := s.connect()
	defer done()
	if err != nil {
		return s.agentError(err)
	}
	s.log.Debug("sending Add", "netns", att.Netns, "ips", att.RuntimeConfig.Ips)
	resp, err := a.Add(ctx, &cniv1.AddRequest{Attachment: att})
	if err != nil {
		return s.agentError(err)
	}
	res, err := ToCNIResult(resp.GetResult(), s.args.IfName, s.args.Netns)
	if err != nil {
		// The runtime follows a failed ADD with a DEL, which releases
		// what the agent allocated.
		return types.NewError(ErrAgentFailed, "vecnet-agent returned an unusable result: "+err.Error(), "")
	}
	res.DNS = s.conf.DNS
	out, err := ResultAsVersion(res, s.conf.CNIVersion)
	if err != nil {
		return types.NewError(types.ErrIncompatibleCNIVersion, err.Error(), "")
	}
	if err := out.PrintTo(p.stdout()); err != nil {
		return types.NewError(types.ErrIOFailure, "writing the result: "+err.Error(), "")
	}
	var ips []string
	for _, ip := range res.IPs {
		ips = append(ips, ip.Address.String())
	}
	s.log.Info("pod added", "ips", strings.Join(ips, ","), "mtu", resp.GetResult().GetMtu())
	return nil
}

// del: DEL. Idempotent: the agent answers OK (or NotFound) for an
// attachment it does not have, and so does the plugin.
//
// DEL when vecnet-agent cannot be reached (no socket, connection refused,
// or the agent answers Unavailable because it is not ready):
//
// CNI 1.1 says plugins "should generally complete a DEL action without
// error even if some resources are missing" (its example: an IPAM plugin
// should release the allocation even if the netns is gone), and "MUST
// accept multiple DEL calls for the same (CNI_CONTAINERID, CNI_IFNAME)
// pair, and return success if the interface in question, or any
// modifications added, are missing". Neither lets DEL claim success while
// resources may remain: a successful DEL makes the runtime forget the
// attachment for good. vecnet's resources (the agent's address
// reservation, vecnetd's side of the tun interface and its routes) live
// outside the pod's network namespace, so whether CNI_NETNS still exists
// tells nothing about them; only the agent knows. What the plugin can know
// is whether the runtime has a successful ADD on record: since CNI 0.4.0
// the runtime passes the ADD's result as prevResult on DEL, and libcni
// drops it once a DEL succeeded.
//
//   - prevResult present: an ADD succeeded and its addresses are presumably
//     still reserved. DEL fails with code 11 (try again later); kubelet
//     retries StopPodSandbox until the agent is back. Succeeding would leak
//     the addresses until a GC.
//   - no prevResult (config 0.4.0 or later): no ADD succeeded (the agent
//     rolls back a failed or abandoned ADD itself, see api/cni/v1) or this
//     is a repeated DEL. There is nothing to clean up that a DEL could
//     reach, so DEL succeeds, with a warning in the log. (What may remain -
//     an ADD the agent completed but whose reply never reached the
//     runtime, e.g. after our timeout, or, in a list with plugins after
//     vecnet, a vecnet ADD followed by a later plugin's failure, if the
//     agent went away in between - is what GC and the agent's own
//     reconciliation are for.)
//   - config older than 0.4.0: runtimes never pass prevResult on DEL, so
//     its absence means nothing: code 11.
//
// A timeout (DeadlineExceeded) or any other error from an agent that did
// get the request is returned as an error (agentError) whatever prevResult.
func (p *Plugin) del(s *session) *types.Error {
	att, aerr := s.attachment(true)
	if aerr != nil {
		return aerr
	}
	prevRecorded := s.conf.RawPrevResult != nil
	prev, perr := s.conf.PrevResult()
	if perr != nil {
		s.log.Warn("ignoring a prevResult that does not decode", "err", perr.Msg)
	}
	a, ctx, done, err := s.connect()
	defer done()
	if err == nil {
		_, err = a.Del(ctx, &cniv1.DelRequest{Attachment: att, PrevResult: FromCNIResult(prev, s.args.IfName)})
	}
	if err == nil {
		s.log.Info("pod removed")
		return nil
	}
	var unreach *unreachableError
	switch {
	case status.Code(err) == codes.NotFound:
		s.log.Info("pod removed (the agent had no such attachment)")
		return nil
	case errors.As(err, &unreach) || status.Code(err) == codes.Unavailable:
		newEnough, _ := version.GreaterThanOrEqualTo(s.conf.CNIVersion, "0.4.0")
		if !prevRecorded && newEnough {
			s.log.Warn("vecnet-agent is not reachable, but the runtime has no successful ADD on record: nothing to clean up",
				"socket", s.conf.AgentSocket, "err", err)
			return nil
		}
	}
	return s.agentError(err)
}

// check: CHECK. The agent compares prevResult with what it and vecnetd have.
func (p *Plugin) check(s *session) *types.Error {
	prev, perr := s.conf.PrevResult()
	if perr != nil {
		return perr
	}
	if prev == nil {
		return invalid(`CHECK needs the "prevResult" of the ADD, and the runtime passed none`)
	}
	att, aerr := s.attachment(false)
	if aerr != nil {
		return aerr
	}
	if err := checkNetns(s.args.Netns); err != nil {
		return err
	}
	a, ctx, done, err := s.connect()
	defer done()
	if err != nil {
		return s.agentError(err)
	}
	if _, err := a.Check(ctx, &cniv1.CheckRequest{Attachment: att, PrevResult: FromCNIResult(prev, s.args.IfName)}); err != nil {
		return s.agentError(err)
	}
	return nil
}

// status: STATUS. Code 50 unless the agent is reachable and ready; 51 when
// it says running pods are affected too.
func (p *Plugin) status(s *session) *types.Error {
	a, ctx, done, err := s.connect()
	defer done()
	if err != nil {
		return s.agentError(err)
	}
	resp, err := a.Status(ctx, &cniv1.StatusRequest{Network: s.conf.Name, Config: s.conf.Raw})
	if err != nil {
		return s.agentError(err)
	}
	if resp.GetReady() {
		return nil
	}
	msg := resp.GetMessage()
	if msg == "" {
		msg = "no reason given"
	}
	code := ErrPluginNotAvailable
	if resp.GetExistingPodsAffected() {
		code = ErrPluginNotAvailableLimitedConnectivity
	}
	return types.NewError(code, "vecnet-agent is not ready: "+msg, "")
}

// gc: GC. Without cni.dev/valid-attachments there is nothing to compare
// with, and releasing everything would cut every pod off: do nothing.
func (p *Plugin) gc(s *session) *types.Error {
	if !s.conf.HasValidAttachments {
		s.log.Warn("GC without cni.dev/valid-attachments: nothing to compare with, skipping")
		return nil
	}
	req := &cniv1.GCRequest{Network: s.conf.Name, Config: s.conf.Raw}
	for _, va := range s.conf.ValidAttachments {
		req.ValidAttachments = append(req.ValidAttachments, &cniv1.AttachmentKey{ContainerId: va.ContainerID, Ifname: va.IfName})
	}
	a, ctx, done, err := s.connect()
	defer done()
	if err != nil {
		return s.agentError(err)
	}
	resp, err := a.GC(ctx, req)
	if err != nil {
		return s.agentError(err)
	}
	s.log.Info("garbage collected", "valid", len(req.ValidAttachments), "released", resp.GetReleased())
	return nil
}

// ToCNIResult converts and checks the agent's Add result. The interface
// named ifname (which must be there) gets sandbox netns if the agent left
// it empty, and the result's MTU.
func ToCNIResult(r *cniv1.Result, ifname, netns string) (*types100.Result, error) {
	if r == nil {
		return nil, errors.New("no result")
	}
	res := &types100.Result{CNIVersion: types100.ImplementedSpecVersion}
	found := false
	for i, in := range r.GetInterfaces() {
		if in.GetName() == "" {
			return nil, fmt.Errorf("interfaces[%d].name is empty", i)
		}
		if in.GetMac() != "" {
			if _, err := net.ParseMAC(in.GetMac()); err != nil {
				return nil, fmt.Errorf("interfaces[%d].mac: %q is not a MAC address", i, in.GetMac())
			}
		}
		iface := &types100.Interface{Name: in.GetName(), Mac: in.GetMac(), Sandbox: in.GetSandbox()}
		if iface.Name == ifname && !found {
			found = true
			if iface.Sandbox == "" {
				iface.Sandbox = netns
			}
			iface.Mtu = int(r.GetMtu())
		}
		res.Interfaces = append(res.Interfaces, iface)
	}
	if !found {
		return nil, fmt.Errorf("no interface named %q (CNI_IFNAME)", ifname)
	}
	if len(r.GetIps()) == 0 {
		return nil, errors.New("no IP address")
	}
	for i, ipc := range r.GetIps() {
		ip, ipnet, err := net.ParseCIDR(ipc.GetAddress())
		if err != nil {
			return nil, fmt.Errorf("ips[%d].address: %q is not an address in CIDR notation", i, ipc.GetAddress())
		}
		c := &types100.IPConfig{Address: net.IPNet{IP: normIP(ip), Mask: ipnet.Mask}}
		if gw := ipc.GetGateway(); gw != "" {
			if c.Gateway = normIP(net.ParseIP(gw)); c.Gateway == nil {
				return nil, fmt.Errorf("ips[%d].gateway: %q is not an IP address", i, gw)
			}
		}
		if ipc.Interface != nil {
			idx := int(ipc.GetInterface())
			if idx >= len(res.Interfaces) {
				return nil, fmt.Errorf("ips[%d].interface: %d is not an index in interfaces (%d)", i, idx, len(res.Interfaces))
			}
			c.Interface = &idx
		}
		res.IPs = append(res.IPs, c)
	}
	for i, rt := range r.GetRoutes() {
		_, dst, err := net.ParseCIDR(rt.GetDst())
		if err != nil {
			return nil, fmt.Errorf("routes[%d].dst: %q is not a prefix in CIDR notation", i, rt.GetDst())
		}
		route := &types.Route{Dst: *dst}
		if gw := rt.GetGw(); gw != "" {
			if route.GW = normIP(net.ParseIP(gw)); route.GW == nil {
				return nil, fmt.Errorf("routes[%d].gw: %q is not an IP address", i, gw)
			}
		}
		res.Routes = append(res.Routes, route)
	}
	return res, nil
}

// normIP returns IPv4 addresses in their 4-byte form.
func normIP(ip net.IP) net.IP {
	if v4 := ip.To4(); v4 != nil {
		return v4
	}
	return ip
}

// FromCNIResult converts a runtime-recorded result (prevResult) for the
// agent; nil for nil. Its MTU is that of the interface named ifname.
func FromCNIResult(r *types100.Result, ifname string) *cniv1.Result {
	if r == nil {
		return nil
	}
	out := &cniv1.Result{}
	for _, in := range r.Interfaces {
		if in == nil {
			continue
		}
		out.Interfaces = append(out.Interfaces, &cniv1.Interface{Name: in.Name, Mac: in.Mac, Sandbox: in.Sandbox})
		if in.Name == ifname && out.Mtu == 0 && in.Mtu > 0 {
			out.Mtu = uint32(in.Mtu)
		}
	}
	for _, ipc := range r.IPs {
		if ipc == nil {
			continue
		}
		c := &cniv1.IPConfig{Address: ipc.Address.String()}
		if ipc.Gateway != nil {
			c.Gateway = ipc.Gateway.String()
		}
		if ipc.Interface != nil && *ipc.Interface >= 0 {
			idx := uint32(*ipc.Interface)
			c.Interface = &idx
		}
		out.Ips = append(out.Ips, c)
	}
	for _, rt := range r.Routes {
		if rt == nil {
			continue
		}
		c := &cniv1.Route{Dst: rt.Dst.String()}
		if rt.GW != nil {
			c.Gw = rt.GW.String()
		}
		out.Routes = append(out.Routes, c)
	}
	return out
}

// ResultAsVersion converts a CNI 1.1 result to the configuration's
// cniVersion. Interface MTUs exist from 1.1.0 on and are dropped before.
func ResultAsVersion(res *types100.Result, cniVersion string) (types.Result, error) {
	if cniVersion != types100.ImplementedSpecVersion {
		cp := *res
		cp.Interfaces = nil
		for _, in := range res.Interfaces {
			c := *in
			c.Mtu = 0
			cp.Interfaces = append(cp.Interfaces, &c)
		}
		res = &cp
	}
	return res.GetAsVersion(cniVersion)
}
