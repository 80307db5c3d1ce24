package cniplugin

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/types/create"
	"github.com/containernetworking/cni/pkg/utils"
)

// Defaults and limits of the plugin configuration.
const (
	// PluginType is the only accepted "type": the binary's name.
	PluginType = "vecnet"
	// DefaultAgentSocket is where vecnet-agent serves the CNI API.
	DefaultAgentSocket = "/run/vecnet/cni.sock"
	// DefaultTimeout bounds one plugin invocation's talk with the agent.
	DefaultTimeout = 30 * time.Second
	// MaxTimeout is the largest accepted "timeout"; runtimes give up on a
	// sandbox long before.
	MaxTimeout = 10 * time.Minute
	// MinMTU and MaxMTU bound "mtu": IPv4's minimum and the largest MTU a
	// tun interface takes.
	MinMTU = 68
	MaxMTU = 65535
	// DefaultLogLevel keeps the runtime's log (where the plugin's stderr
	// goes) free of one line per pod; failures are logged at error.
	DefaultLogLevel = slog.LevelWarn
	// maxSocketPath is the longest unix socket path: sun_path is 108 bytes,
	// NUL included.
	maxSocketPath = 107
)

// Config is the plugin's configuration (the JSON the runtime passes on
// stdin), parsed and validated.
type Config struct {
	// Standard CNI keys.
	CNIVersion string
	Name       string
	Type       string
	DNS        types.DNS

	// vecnet's keys.
	AgentSocket string        // "agentSocket"; DefaultAgentSocket if absent
	MTU         uint32        // "mtu"; 0: the agent's default
	Timeout     time.Duration // "timeout"; DefaultTimeout if absent
	LogLevel    slog.Level    // "logLevel"; DefaultLogLevel if absent
	LogFile     string        // "logFile"; "" logs to stderr

	// Runtime-supplied keys.
	IPs            []string          // runtimeConfig.ips, else args.cni.ips
	MAC            string            // runtimeConfig.mac
	PodAnnotations map[string]string // runtimeConfig["io.kubernetes.cri.pod-annotations"]
	// RawPrevResult is "prevResult" as passed (nil if absent or null); see
	// PrevResult.
	RawPrevResult json.RawMessage
	// ValidAttachments is cni.dev/valid-attachments (GC only);
	// HasValidAttachments tells an empty list from an absent one.
	ValidAttachments    []types.GCAttachment
	HasValidAttachments bool

	// UnknownKeys lists top-level keys the plugin does not know, sorted;
	// they are ignored (and logged), as the spec lets runtimes add keys.
	UnknownKeys []string
	// Raw is the configuration exactly as received.
	Raw []byte
}

// knownKeys are the top-level keys the plugin reads or that CNI defines for
// plugin configurations. Keys starting with "cni.dev/" are the protocol's.
var knownKeys = map[string]bool{
	"cniVersion": true, "cniVersions": true, "name": true, "type": true,
	"capabilities": true, "runtimeConfig": true, "args": true, "prevResult": true,
	"ipam": true, "dns": true,
	"agentSocket": true, "mtu": true, "timeout": true, "logLevel": true, "logFile": true,
}

// invalid returns a CNI error for a configuration problem, code 7 unless
// told otherwise. Messages start with "invalid config: " and name the key.
func invalid(format string, args ...any) *types.Error {
	return types.NewError(types.ErrInvalidNetworkConfig, "invalid config: "+fmt.Sprintf(format, args...), "")
}

// ParseConfig parses and validates the plugin's configuration. Errors are
// CNI errors naming the offending key: code 6 for JSON that does not
// decode, 2 for a key vecnet does not support, 7 for everything else.
// Keys are matched exactly (JSON is case sensitive; encoding/json is not).
func ParseConfig(data []byte) (*Config, *types.Error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(data, &top); err != nil {
		return nil, types.NewError(types.ErrDecodingFailure, "invalid config: not a JSON object: "+err.Error(), "")
	}
	if top == nil {
		return nil, types.NewError(types.ErrDecodingFailure, "invalid config: not a JSON object: null", "")
	}
	c := &Config{
		AgentSocket: DefaultAgentSocket,
		Timeout:     DefaultTimeout,
		LogLevel:    DefaultLogLevel,
		Raw:         data,
	}
	for k := range top {
		if !knownKeys[k] && !strings.HasPrefix(k, "cni.dev/") {
			c.UnknownKeys = append(c.UnknownKeys, k)
		}
	}
	sort.Strings(c.UnknownKeys)

	if err := decodeKey(top, "cniVersion", &c.CNIVersion); err != nil {
		return nil, err
	}
	if err := decodeKey(top, "name", &c.Name); err != nil {
		return nil, err
	}
	if c.Name == "" {
		return nil, invalid(`"name" is missing`)
	}
	if err := utils.ValidateNetworkName(c.Name); err != nil {
		return nil, invalid(`"name" %q must start with a letter or digit and contain only letters, digits, "_", "." and "-"`, c.Name)
	}
	if err := decodeKey(top, "type", &c.Type); err != nil {
		return nil, err
	}
	if c.Type != PluginType {
		return nil, invalid(`"type" must be %q, got %q`, PluginType, c.Type)
	}

	if raw, ok := present(top, "ipam"); ok && !isEmptyObject(raw) {
		return nil, types.NewError(types.ErrUnsupportedField,
			fmt.Sprintf(`invalid config: "ipam" is not supported (vecnet-agent allocates the addresses); remove "ipam": %s`, abbrev(raw)), "")
	}

	if raw, ok := present(top, "agentSocket"); ok {
		if err := decodeValue(raw, "agentSocket", &c.AgentSocket); err != nil {
			return nil, err
		}
		switch {
		case c.AgentSocket == "":
			return nil, invalid(`"agentSocket" must not be empty (default %s)`, DefaultAgentSocket)
		case !filepath.IsAbs(c.AgentSocket):
			return nil, invalid(`"agentSocket" must be an absolute path, got %q`, c.AgentSocket)
		case len(c.AgentSocket) > maxSocketPath:
			return nil, invalid(`"agentSocket" is %d bytes long; a unix socket path has at most %d`, len(c.AgentSocket), maxSocketPath)
		case strings.IndexByte(c.AgentSocket, 0) >= 0:
			return nil, invalid(`"agentSocket" must not contain a NUL byte`)
		}
	}

	if raw, ok := present(top, "mtu"); ok {
		var mtu int64
		if err := json.Unmarshal(raw, &mtu); err != nil {
			return nil, invalid(`"mtu" must be an integer from %d to %d (or 0 for the agent's default), got %s`, MinMTU, MaxMTU, abbrev(raw))
		}
		if mtu != 0 && (mtu < MinMTU || mtu > MaxMTU) {
			return nil, invalid(`"mtu" must be from %d to %d (or 0 for the agent's default), got %d`, MinMTU, MaxMTU, mtu)
		}
		c.MTU = uint32(mtu)
	}

	if raw, ok := present(top, "timeout"); ok {
		d, err := parseTimeout(raw)
		if err != nil {
			return nil, err
		}
		c.Timeout = d
	}

	if raw, ok := present(top, "logLevel"); ok {
		var s string
		if err := decodeValue(raw, "logLevel", &s); err != nil {
			return nil, err
		}
		lvl, ok := parseLogLevel(s)
		if !ok {
			return nil, invalid(`"logLevel" must be one of debug, info, warn, error; got %q`, s)
		}
		c.LogLevel = lvl
	}

	if raw, ok := present(top, "logFile"); ok {
		if err := decodeValue(raw, "logFile", &c.LogFile); err != nil {
			return nil, err
		}
		if c.LogFile != "" && (!filepath.IsAbs(c.LogFile) || strings.IndexByte(c.LogFile, 0) >= 0) {
			return nil, invalid(`"logFile" must be an absolute path, got %q`, c.LogFile)
		}
	}

	if raw, ok := present(top, "dns"); ok {
		if err := decodeValue(raw, "dns", &c.DNS); err != nil {
			return nil, err
		}
		for i, ns := range c.DNS.Nameservers {
			if net.ParseIP(ns) == nil {
				return nil, invalid(`"dns.nameservers[%d]" must be an IP address, got %q`, i, ns)
			}
		}
	}

	if err := c.parseRuntimeConfig(top); err != nil {
		return nil, err
	}

	if raw, ok := present(top, "prevResult"); ok {
		c.RawPrevResult = raw
	}

	// GC: cni.dev/valid-attachments; libcni also sends the spec's original,
	// misspelt key cni.dev/attachments (containernetworking/cni#1101).
	for _, key := range []string{"cni.dev/valid-attachments", "cni.dev/attachments"} {
		raw, ok := top[key]
		if !ok {
			continue
		}
		if err := decodeValue(raw, key, &c.ValidAttachments); err != nil {
			return nil, err
		}
		for i, a := range c.ValidAttachments {
			if a.ContainerID == "" || a.IfName == "" {
				return nil, invalid(`"%s[%d]" needs both "containerID" and "ifname"`, key, i)
			}
		}
		c.HasValidAttachments = true
		break
	}
	return c, nil
}

// parseRuntimeConfig reads the capability arguments vecnet uses from
// runtimeConfig, and the "ips" convention of args.cni. Other keys there are
// for other plugins (portMappings, bandwidth...) and are ignored, as are
// args that are not shaped as the conventions say (args is optional
// metadata plugins may ignore).
func (c *Config) parseRuntimeConfig(top map[string]json.RawMessage) *types.Error {
	if raw, ok := present(top, "runtimeConfig"); ok {
		var rc map[string]json.RawMessage
		if err := json.Unmarshal(raw, &rc); err != nil {
			return invalid(`"runtimeConfig" must be an object, got %s`, abbrev(raw))
		}
		if raw, ok := present(rc, "ips"); ok {
			if err := decodeValue(raw, "runtimeConfig.ips", &c.IPs); err != nil {
				return err
			}
			if err := checkIPs(c.IPs, "runtimeConfig.ips"); err != nil {
				return err
			}
		}
		if raw, ok := present(rc, "mac"); ok {
			if err := decodeValue(raw, "runtimeConfig.mac", &c.MAC); err != nil {
				return err
			}
			if c.MAC != "" {
				if _, err := net.ParseMAC(c.MAC); err != nil {
					return invalid(`"runtimeConfig.mac" must be a MAC address, got %q`, c.MAC)
				}
			}
		}
		if raw, ok := present(rc, "io.kubernetes.cri.pod-annotations"); ok {
			if err := decodeValue(raw, "runtimeConfig.io.kubernetes.cri.pod-annotations", &c.PodAnnotations); err != nil {
				return err
			}
		}
	}
	if len(c.IPs) > 0 {
		return nil
	}
	// args.cni.ips: used only when the runtimeConfig has none.
	var args, cni map[string]json.RawMessage
	if raw, ok := present(top, "args"); !ok || json.Unmarshal(raw, &args) != nil {
		return nil
	}
	if raw, ok := present(args, "cni"); !ok || json.Unmarshal(raw, &cni) != nil {
		return nil
	}
	if raw, ok := present(cni, "ips"); ok {
		if err := decodeValue(raw, "args.cni.ips", &c.IPs); err != nil {
			return err
		}
		return checkIPs(c.IPs, "args.cni.ips")
	}
	return nil
}

// checkIPs checks requested addresses: "ip" or "ip/prefix".
func checkIPs(ips []string, key string) *types.Error {
	for i, s := range ips {
		if !validIPOrCIDR(s) {
			return invalid(`"%s[%d]" must be an IP address or CIDR, got %q`, key, i, s)
		}
	}
	return nil
}

func validIPOrCIDR(s string) bool {
	if strings.Contains(s, "/") {
		_, _, err := net.ParseCIDR(s)
		return err == nil
	}
	return net.ParseIP(s) != nil
}

// PrevResult returns the "prevResult" as a CNI 1.1 result, nil if there is
// none. A prevResult that does not decode is a code 6 error.
func (c *Config) PrevResult() (*types100.Result, *types.Error) {
	if c.RawPrevResult == nil {
		return nil, nil
	}
	fail := func(err error) *types.Error {
		return types.NewError(types.ErrDecodingFailure, `invalid config: "prevResult" does not decode: `+err.Error(), "")
	}
	// Results before 1.0.0 may omit cniVersion; it is then the config's.
	var m map[string]any
	if err := json.Unmarshal(c.RawPrevResult, &m); err != nil {
		return nil, fail(err)
	}
	if v, _ := m["cniVersion"].(string); v == "" {
		m["cniVersion"] = c.CNIVersion
	}
	raw, err := json.Marshal(m)
	if err != nil {
		return nil, fail(err)
	}
	v, _ := m["cniVersion"].(string)
	res, err := create.Create(v, raw)
	if err != nil {
		return nil, fail(err)
	}
	r, err := types100.NewResultFromResult(res)
	if err != nil {
		return nil, fail(err)
	}
	return r, nil
}

// parseTimeout reads "timeout": a Go duration string ("30s", "1m30s") or a
// number of seconds.
func parseTimeout(raw json.RawMessage) (time.Duration, *types.Error) {
	bad := func() *types.Error {
		return invalid(`"timeout" must be a duration such as "30s" or a number of seconds, from 1ms to %s; got %s`, MaxTimeout, abbrev(raw))
	}
	var d time.Duration
	var s string
	var f float64
	switch {
	case json.Unmarshal(raw, &s) == nil:
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			return 0, bad()
		}
	case json.Unmarshal(raw, &f) == nil:
		if math.IsNaN(f) || f <= 0 || f > MaxTimeout.Seconds() {
			return 0, bad()
		}
		d = time.Duration(f * float64(time.Second))
	default:
		return 0, bad()
	}
	if d < time.Millisecond || d > MaxTimeout {
		return 0, bad()
	}
	return d, nil
}

func parseLogLevel(s string) (slog.Level, bool) {
	switch strings.ToLower(s) {
	case "debug":
		return slog.LevelDebug, true
	case "info":
		return slog.LevelInfo, true
	case "warn", "warning":
		return slog.LevelWarn, true
	case "error":
		return slog.LevelError, true
	}
	return 0, false
}

// present returns m[key] unless it is absent or JSON null.
func present(m map[string]json.RawMessage, key string) (json.RawMessage, bool) {
	raw, ok := m[key]
	if !ok || bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		return nil, false
	}
	return raw, true
}

func isEmptyObject(raw json.RawMessage) bool {
	var m map[string]json.RawMessage
	return json.Unmarshal(raw, &m) == nil && len(m) == 0
}

// decodeKey decodes top[key] into v if present (and not null).
func decodeKey(top map[string]json.RawMessage, key string, v any) *types.Error {
	raw, ok := present(top, key)
	if !ok {
		return nil
	}
	return decodeValue(raw, key, v)
}

// decodeValue decodes raw into v; a type mismatch names the key (and the
// path inside it) and the expected type.
func decodeValue(raw json.RawMessage, key string, v any) *types.Error {
	err := json.Unmarshal(raw, v)
	if err == nil {
		return nil
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		path := key
		if te.Field != "" {
			path += "." + te.Field
		}
		return invalid(`"%s" must be %s, got %s`, path, describeType(te.Type), te.Value)
	}
	return invalid(`"%s": %v`, key, err)
}

func describeType(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "a list of " + strings.TrimPrefix(strings.TrimPrefix(describeType(t.Elem()), "a "), "an ") + "s"
	case reflect.Map, reflect.Struct:
		return "an object"
	case reflect.Pointer:
		return describeType(t.Elem())
	}
	return t.String()
}

// abbrev quotes a JSON value for a message, cut to a readable length.
func abbrev(raw json.RawMessage) string {
	s := string(bytes.TrimSpace(raw))
	if len(s) > 64 {
		s = s[:61] + "..."
	}
	return s
}

// Pod is the Kubernetes pod of an attachment, from CNI_ARGS.
type Pod struct {
	Namespace, Name, UID, InfraContainerID string
}

// CNIArgs is CNI_ARGS parsed.
type CNIArgs struct {
	// All is every KEY=VALUE pair.
	All map[string]string
	Pod Pod
	// IPs is the IP key split at commas (the oldest "ips" convention).
	IPs []string
}

// ParseCNIArgs parses CNI_ARGS, "KEY=VALUE;KEY=VALUE". Empty items are
// skipped; an item without "=" or with an empty key is a code 4 error, as
// is an IP key that is not a list of addresses.
func ParseCNIArgs(s string) (*CNIArgs, *types.Error) {
	a := &CNIArgs{All: map[string]string{}}
	for _, item := range strings.Split(s, ";") {
		if item == "" {
			continue
		}
		k, v, ok := strings.Cut(item, "=")
		if !ok || k == "" {
			return nil, types.NewError(types.ErrInvalidEnvironmentVariables,
				fmt.Sprintf("invalid CNI_ARGS: %s is not KEY=VALUE (CNI_ARGS is KEY=VALUE pairs separated by \";\")", strconv.Quote(item)), "")
		}
		a.All[k] = v
	}
	a.Pod = Pod{
		Namespace:        a.All["K8S_POD_NAMESPACE"],
		Name:             a.All["K8S_POD_NAME"],
		UID:              a.All["K8S_POD_UID"],
		InfraContainerID: a.All["K8S_POD_INFRA_CONTAINER_ID"],
	}
	if ip := a.All["IP"]; ip != "" {
		for _, s := range strings.Split(ip, ",") {
			s = strings.TrimSpace(s)
			if !validIPOrCIDR(s) {
				return nil, types.NewError(types.ErrInvalidEnvironmentVariables,
					fmt.Sprintf("invalid CNI_ARGS: IP=%s: %q is not an IP address or CIDR", ip, s), "")
			}
			a.IPs = append(a.IPs, s)
		}
	}
	return a, nil
}
