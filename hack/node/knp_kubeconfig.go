package main

// Added by the ACGS build (hack/build-node.sh): the local real node runs kube-network-policies as
// a host process beside the kubelet, with a kubeconfig ($KUBECONFIG), instead of as a DaemonSet pod.

import (
	"os"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

func acgsRestConfig() (*rest.Config, error) {
	if path := os.Getenv("KUBECONFIG"); path != "" {
		return clientcmd.BuildConfigFromFlags("", path)
	}
	return rest.InClusterConfig()
}
