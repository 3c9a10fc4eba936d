// kstatus-check prints what sigs.k8s.io/cli-utils/pkg/kstatus (the library Flux, kpt and
// cli-utils' apply use) computes for Kubernetes objects: one JSON line per object with its status
// (InProgress, Current, Failed, Terminating, NotFound, Unknown) and message.
//
// Input on stdin: one object, or a List (`kubectl get ... -o json`).
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

type verdict struct {
	Kind    string `json:"kind"`
	Name    string `json:"name"`
	Status  string `json:"status"`
	Message string `json:"message"`
}

func main() {
	raw, err := io.ReadAll(os.Stdin)
	if err != nil {
		fail("reading stdin: %v", err)
	}
	var obj unstructured.Unstructured
	if err := obj.UnmarshalJSON(raw); err != nil {
		fail("stdin is not a Kubernetes object or List: %v", err)
	}
	items := []unstructured.Unstructured{obj}
	if obj.IsList() {
		list, err := obj.ToList()
		if err != nil {
			fail("reading the List: %v", err)
		}
		items = list.Items
	}
	out := json.NewEncoder(os.Stdout)
	for i := range items {
		result, err := status.Compute(&items[i])
		if err != nil {
			fail("%s %s: %v", items[i].GetKind(), items[i].GetName(), err)
		}
		_ = out.Encode(verdict{items[i].GetKind(), items[i].GetName(), string(result.Status), result.Message})
	}
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "kstatus-check: "+format+"\n", args...)
	os.Exit(2)
}
