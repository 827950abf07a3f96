// Command etcd runs the etcd server at the version k8s.io/kubernetes selects,
// so that the test control plane matches the release it pins.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
