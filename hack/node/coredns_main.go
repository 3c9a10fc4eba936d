// CoreDNS with only the plugins the local cluster's Corefile uses (hack/node/coredns.yaml): the
// full binary compiles every cloud provider's SDK, minutes of CPU on a 2-core machine. This is
// CoreDNS's documented way to choose plugins: a main package importing coremain and the plugins.
package main

import (
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/loop"
	_ "github.com/coredns/coredns/plugin/ready"
	_ "github.com/coredns/coredns/plugin/reload"
)

func main() {
	coremain.Run()
}
