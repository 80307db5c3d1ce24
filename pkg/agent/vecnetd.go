package agent

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"

	vecnetv1 "github.com/vecnet/vecnet/api/vecnet/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"
)

// dialVecnetd connects to vecnetd's API. The connection is lazy: vecnetd
// may start after the agent, and gRPC reconnects when it restarts.
func dialVecnetd(socket string) (*grpc.ClientConn, vecnetv1.DataplaneClient, error) {
	conn, err := grpc.NewClient("unix:"+socket,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		// A local socket is cheap to retry: gRPC's default backoff (up to
		// two minutes) would leave pods without interfaces that long
		// after a vecnetd restart.
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 50 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second},
			MinConnectTimeout: time.Second,
		}),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(256<<20), grpc.MaxCallSendMsgSize(256<<20)))
	if err != nil {
		return nil, nil, fmt.Errorf("vecnetd socket %s: %w", socket, err)
	}
	return conn, vecnetv1.NewDataplaneClient(conn), nil
}

// podInterfaceName is the deterministic vecnetd name of a pod attachment,
// so that DEL, CHECK, GC and an agent restarted after a crash find the
// interface from the container ID and interface name alone, with no state
// of the agent's own. 13 characters fit IFNAMSIZ.
func podInterfaceName(containerID, ifname string) string {
	h := sha256.Sum256([]byte(containerID + "/" + ifname))
	return "vn" + hex.EncodeToString(h[:])[:11]
}

// isPodInterface reports whether a vecnetd interface was made by an agent.
func isPodInterface(name string) bool {
	return len(name) == 13 && name[:2] == "vn"
}
