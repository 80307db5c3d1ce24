package cniplugin

import (
	"context"
	"net"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	cniv1 "github.com/vecnet/vecnet/api/cni/v1"
)

// agentConn is a gRPC connection to vecnet-agent's CNI service.
type agentConn struct {
	cniv1.CNIClient
	conn *grpc.ClientConn
	// pre is the connection dialled to check reachability, until gRPC
	// takes it.
	mu  sync.Mutex
	pre net.Conn
}

// dialAgent connects to the agent's unix socket. It dials once itself,
// before gRPC does, so that "nobody is listening" (no socket file,
// connection refused) is reported as an *unreachableError instead of a
// gRPC Unavailable that could also come from the agent; gRPC then uses
// that connection.
func dialAgent(ctx context.Context, socket string) (*agentConn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", socket)
	if err != nil {
		return nil, &unreachableError{socket: socket, err: err}
	}
	a := &agentConn{pre: c}
	a.conn, err = grpc.NewClient("passthrough:///localhost",
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithUserAgent("vecnet-cni/"+Version),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
			a.mu.Lock()
			c := a.pre
			a.pre = nil
			a.mu.Unlock()
			if c != nil {
				return c, nil
			}
			return d.DialContext(ctx, "unix", socket)
		}))
	if err != nil {
		c.Close()
		return nil, err
	}
	a.CNIClient = cniv1.NewCNIClient(a.conn)
	return a, nil
}

func (a *agentConn) Close() {
	a.conn.Close()
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.pre != nil {
		a.pre.Close()
		a.pre = nil
	}
}
