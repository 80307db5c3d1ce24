//go:build ignore

// Command crimini is a tiny CRI client for hack/k8s-node: crictl (cri-tools)
// is not served by the Go module proxy, and containerd's own ctr does not
// speak CRI, so it cannot make containerd run the CNI DEL of a pod sandbox.
//
//	crimini [-e unix:///run/containerd/containerd.sock] pods|ps|rmp-all|version
//
// The ignore constraint keeps it out of vecnet's module (which does not
// depend on k8s.io/cri-api): hack/k8s-node/build.sh builds it in the module
// it builds kubelet in.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	cri "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func main() {
	ep := flag.String("e", "unix:///run/containerd/containerd.sock", "CRI endpoint")
	flag.Parse()
	conn, err := grpc.NewClient(*ep, grpc.WithTransportCredentials(insecure.NewCredentials()))
	must(err)
	rt := cri.NewRuntimeServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	switch flag.Arg(0) {
	case "version":
		v, err := rt.Version(ctx, &cri.VersionRequest{})
		must(err)
		fmt.Println(v.RuntimeName, v.RuntimeVersion, v.RuntimeApiVersion)
	case "pods":
		r, err := rt.ListPodSandbox(ctx, &cri.ListPodSandboxRequest{})
		must(err)
		for _, p := range r.Items {
			ip := ""
			if s, err := rt.PodSandboxStatus(ctx, &cri.PodSandboxStatusRequest{PodSandboxId: p.Id}); err == nil && s.Status.Network != nil {
				ip = s.Status.Network.Ip
			}
			fmt.Printf("%s\t%s/%s\t%s\t%s\n", p.Id[:13], p.Metadata.Namespace, p.Metadata.Name, p.State, ip)
		}
	case "ps":
		r, err := rt.ListContainers(ctx, &cri.ListContainersRequest{})
		must(err)
		for _, c := range r.Containers {
			fmt.Printf("%s\t%s\t%s\t%s\n", c.Id[:13], c.Metadata.Name, c.State, c.PodSandboxId[:13])
		}
	case "rmp-all":
		// StopPodSandbox runs the CNI DEL (vecnet releases the address and
		// its interface); RemovePodSandbox forgets the sandbox.
		r, err := rt.ListPodSandbox(ctx, &cri.ListPodSandboxRequest{})
		must(err)
		for _, p := range r.Items {
			_, err1 := rt.StopPodSandbox(ctx, &cri.StopPodSandboxRequest{PodSandboxId: p.Id})
			_, err2 := rt.RemovePodSandbox(ctx, &cri.RemovePodSandboxRequest{PodSandboxId: p.Id})
			fmt.Printf("removed %s %s/%s stop=%v remove=%v\n", p.Id[:13], p.Metadata.Namespace, p.Metadata.Name, errOrOK(err1), errOrOK(err2))
		}
	default:
		fmt.Fprintln(os.Stderr, "usage: crimini [-e ENDPOINT] pods|ps|rmp-all|version")
		os.Exit(2)
	}
}

func errOrOK(err error) any {
	if err == nil {
		return "ok"
	}
	return err
}

func must(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "crimini:", err)
		os.Exit(1)
	}
}
