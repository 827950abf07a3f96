//go:build tools

// Package node pins the Kubernetes commands that ../build.sh compiles, so
// that go mod tidy keeps their dependencies.
package node

import (
	_ "k8s.io/kubernetes/cmd/kube-proxy"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
