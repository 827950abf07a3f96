// Command cri-clean stops and removes every pod sandbox of a CRI runtime,
// through the CRI itself, so the runtime also tears down each sandbox's
// network (CNI DEL, the veth, the network namespace) as the kubelet would.
// down.sh runs it after stopping the kubelet, before stopping containerd.
//
//	cri-clean unix:///path/to/containerd.sock
package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"go.opentelemetry.io/otel/trace/noop"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	remote "k8s.io/cri-client/pkg"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: cri-clean unix:///path/to/runtime.sock")
		os.Exit(2)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	runtime, err := remote.NewRemoteRuntimeService(ctx, os.Args[1], 10*time.Second, noop.NewTracerProvider(), false)
	if err != nil {
		fmt.Fprintf(os.Stderr, "cri-clean: connect: %v\n", err)
		os.Exit(1)
	}
	sandboxes, err := runtime.ListPodSandbox(ctx, &runtimeapi.PodSandboxFilter{})
	if err != nil {
		fmt.Fprintf(os.Stderr, "cri-clean: list sandboxes: %v\n", err)
		os.Exit(1)
	}
	failed := 0
	for _, sandbox := range sandboxes {
		name := sandbox.Metadata.Namespace + "/" + sandbox.Metadata.Name
		if err := runtime.StopPodSandbox(ctx, sandbox.Id); err != nil {
			fmt.Fprintf(os.Stderr, "cri-clean: stop %s: %v\n", name, err)
			failed++
			continue
		}
		if err := runtime.RemovePodSandbox(ctx, sandbox.Id); err != nil {
			fmt.Fprintf(os.Stderr, "cri-clean: remove %s: %v\n", name, err)
			failed++
			continue
		}
		fmt.Printf("cri-clean: removed %s\n", name)
	}
	if failed > 0 {
		os.Exit(1)
	}
}
