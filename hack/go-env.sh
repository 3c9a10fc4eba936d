# Sourced by the hack/build-*.sh scripts: the Go environment every cached component builds with.
# The checksum database is not reachable from every machine; the proxy still serves the modules
# and each wrapper's go.sum (written on first resolve) pins them.
if ! timeout 5 curl -fsS -o /dev/null "https://sum.golang.org/lookup/github.com/google/uuid@v1.6.0" 2>/dev/null; then
  export GOSUMDB=off
fi
export GOFLAGS="-mod=mod -buildvcs=false" CGO_ENABLED=0

# -ldflags stamping a Kubernetes component with $K8S_VERSION (what `--version` and the apiserver's
# /version report); extra -X flags may follow as arguments.
k8s_ldflags() {
  local pkg="k8s.io/component-base/version"
  echo "-s -w -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$(echo "$K8S_VERSION" | cut -d. -f2) -X $pkg.gitTreeState=clean $*"
}
