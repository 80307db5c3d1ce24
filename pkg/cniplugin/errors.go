package cniplugin

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/containernetworking/cni/pkg/types"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// CNI error codes vecnet returns besides the spec's 1-11 (100 and up are
// plugin specific; 50 and 51 are the spec's STATUS codes).
const (
	// ErrPluginNotAvailable (STATUS): vecnet cannot serve ADD now.
	ErrPluginNotAvailable uint = 50
	// ErrPluginNotAvailableLimitedConnectivity (STATUS): neither can
	// running pods count on their network.
	ErrPluginNotAvailableLimitedConnectivity uint = 51
	// ErrIPPoolExhausted: no address left to give the pod.
	ErrIPPoolExhausted uint = 100
	// ErrAgentFailed: vecnet-agent failed for another reason, or returned a
	// reply the plugin cannot use.
	ErrAgentFailed uint = 101
	// ErrAttachmentState: the attachment is not in the state the command
	// expects: CHECK found it differs from prevResult, ADD found the
	// interface already there.
	ErrAttachmentState uint = 102
)

// unreachableError is a failure to connect to the agent's socket (missing,
// refused, permission denied): no request reached the agent.
type unreachableError struct {
	socket string
	err    error
}

func (e *unreachableError) Error() string { return e.err.Error() }
func (e *unreachableError) Unwrap() error { return e.err }

// notReachableMsg is what a person reads when the agent is not there.
func notReachableMsg(socket string) string {
	return fmt.Sprintf("vecnet-agent is not reachable at %s: is the vecnet-agent pod running on this node?", socket)
}

// envFields are the Attachment fields that come from the runtime's
// environment (CNI_CONTAINERID, CNI_NETNS, CNI_IFNAME, CNI_ARGS): an
// InvalidArgument about them is CNI code 4, about anything else code 7.
var envFields = map[string]bool{
	"container_id": true, "netns": true, "ifname": true, "pod": true, "cni_args": true,
}

// isEnvField reports whether an InvalidArgument message ("field.path:
// reason") is about an environment-derived field.
func isEnvField(msg string) bool {
	field, _, ok := strings.Cut(msg, ":")
	if !ok {
		return false
	}
	field = strings.TrimPrefix(strings.TrimSpace(field), "attachment.")
	if i := strings.IndexAny(field, ".["); i >= 0 {
		field = field[:i]
	}
	return envFields[field]
}

// agentError converts a failed call to the agent into a CNI error. cmd is
// the CNI command ("ADD"...), for the message.
//
//	cannot connect (socket missing, refused)  11, STATUS: 50
//	Unavailable (agent not ready), Canceled   11, STATUS: 50
//	DeadlineExceeded (our "timeout")          11, STATUS: 50
//	InvalidArgument                           4 (environment fields) or 7
//	ResourceExhausted                         100 "IP pool exhausted: ..."
//	NotFound                                  CHECK: 3; (DEL: success, not here)
//	FailedPrecondition, AlreadyExists         102
//	anything else                             101 (STATUS: 50)
func agentError(cmd, socket string, timeout time.Duration, err error) *types.Error {
	var unreach *unreachableError
	if errors.As(err, &unreach) {
		code := types.ErrTryAgainLater
		if cmd == "STATUS" {
			code = ErrPluginNotAvailable
		}
		return types.NewError(code, notReachableMsg(unreach.socket), unreach.err.Error())
	}
	st, ok := status.FromError(err)
	if !ok {
		switch {
		case errors.Is(err, context.DeadlineExceeded):
			st = status.New(codes.DeadlineExceeded, err.Error())
		case errors.Is(err, context.Canceled):
			st = status.New(codes.Canceled, err.Error())
		default:
			st = status.New(codes.Unknown, err.Error())
		}
	}
	msg := st.Message()
	details := "vecnet-agent answered " + st.Code().String()
	if cmd == "STATUS" {
		// Whatever went wrong, STATUS can only say "not available".
		if st.Code() == codes.DeadlineExceeded {
			msg = fmt.Sprintf("vecnet-agent did not answer within %s: %s", timeout, msg)
		} else {
			msg = "vecnet-agent is not available: " + msg
		}
		return types.NewError(ErrPluginNotAvailable, msg, details)
	}
	switch st.Code() {
	case codes.Unavailable, codes.Canceled:
		return types.NewError(types.ErrTryAgainLater, "vecnet-agent is not ready: "+msg, details)
	case codes.DeadlineExceeded:
		return types.NewError(types.ErrTryAgainLater,
			fmt.Sprintf("vecnet-agent did not answer %s within %s (the \"timeout\" setting): %s", cmd, timeout, msg), details)
	case codes.InvalidArgument:
		if isEnvField(msg) {
			return types.NewError(types.ErrInvalidEnvironmentVariables, "vecnet-agent rejected the CNI environment: "+msg, details)
		}
		return types.NewError(types.ErrInvalidNetworkConfig, "vecnet-agent rejected the configuration: "+msg, details)
	case codes.ResourceExhausted:
		return types.NewError(ErrIPPoolExhausted, "IP pool exhausted: "+msg, details)
	case codes.NotFound:
		if cmd == "CHECK" {
			return types.NewError(types.ErrUnknownContainer, "vecnet-agent has no record of this attachment: "+msg, details)
		}
	case codes.FailedPrecondition, codes.AlreadyExists:
		return types.NewError(ErrAttachmentState, strings.ToLower(cmd)+" failed: "+msg, details)
	}
	return types.NewError(ErrAgentFailed, fmt.Sprintf("vecnet-agent failed to %s: %s", verb(cmd), msg), details)
}

func verb(cmd string) string {
	switch cmd {
	case "ADD":
		return "add the pod to the network"
	case "DEL":
		return "remove the pod from the network"
	case "CHECK":
		return "check the pod's network"
	case "GC":
		return "garbage-collect stale attachments"
	}
	return "answer " + cmd
}
