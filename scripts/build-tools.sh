#!/usr/bin/env bash
# Builds (once per pinned version) the control-plane binaries the tests and `quantgate dev`
# use: kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, etcd, helm, and the
# Kueue controller manager with its CRDs (kueue-crds/, from the same module source).
# Binaries land in ~/.cache/quantgate/bin/<component>-<version>/ with stable links in
# ~/.cache/quantgate/bin/. A stamp file records the pin; a changed pin rebuilds.
set -euo pipefail

K8S_VERSION=v1.37.2
ETCD_VERSION=v3.7.3
HELM_VERSION=v3.22.0
KUEUE_VERSION=v0.17.0

root=$(cd "$(dirname "$0")/.." && pwd)
cache=${QUANTGATE_CACHE:-$HOME/.cache/quantgate}
bin=$cache/bin
mkdir -p "$bin"

# Two cores and 24 GiB: two compile jobs keep the apiserver link within memory.
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS="-mod=mod -trimpath -p=2"

build() {  # build NAME VERSION MODULE_DIR LDFLAGS PKG...
  local name=$1 version=$2 dir=$3 ldflags=$4; shift 4
  local out=$bin/$version
  local stamp=$out/.built-$name
  local want="$version $(sha256sum "$root/tools/$dir/go.mod" | cut -c1-16)"
  if [[ -f $stamp && $(cat "$stamp") == "$want" ]]; then
    echo "tools: $name $version cached in $out"
  else
    echo "tools: building $name $version (first time takes minutes) ..."
    local t0=$SECONDS
    mkdir -p "$out"
    (cd "$root/tools/$dir" && go build -pgo=off -ldflags "$ldflags" -o "$out/" "$@")
    echo "$want" > "$stamp"
    echo "tools: built $name $version in $((SECONDS - t0))s"
  fi
}

k8s_minor=$(echo "$K8S_VERSION" | cut -d. -f2)
stamp_k8s=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  stamp_k8s+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$k8s_minor -X $pkg.gitTreeState=clean"
done

build etcd "$ETCD_VERSION" etcd "-s -w" go.etcd.io/etcd/server/v3
# `go build -o DIR/` names etcd's main package after its module's last element before /v3: "server".
if [[ -f $bin/$ETCD_VERSION/server ]]; then mv -f "$bin/$ETCD_VERSION/server" "$bin/$ETCD_VERSION/etcd"; fi
build helm "$HELM_VERSION" helm "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION \
  -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$k8s_minor \
  -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$k8s_minor" \
  helm.sh/helm/v3/cmd/helm
build kubernetes "$K8S_VERSION" cluster "-s -w$stamp_k8s" \
  k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
  k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl

build kueue "$KUEUE_VERSION" kueue "-s -w -X sigs.k8s.io/kueue/pkg/version.GitVersion=$KUEUE_VERSION" \
  sigs.k8s.io/kueue/cmd/kueue
if [[ ! -d $bin/$KUEUE_VERSION/kueue-crds ]]; then  # the CRDs of the same version, for `kubectl apply`
  src=$(cd "$root/tools/kueue" && go list -m -f '{{.Dir}}' sigs.k8s.io/kueue)
  mkdir -p "$bin/$KUEUE_VERSION/kueue-crds.tmp"
  cp "$src"/config/components/crd/bases/*.yaml "$bin/$KUEUE_VERSION/kueue-crds.tmp/"
  chmod -R u+w "$bin/$KUEUE_VERSION/kueue-crds.tmp"
  mv "$bin/$KUEUE_VERSION/kueue-crds.tmp" "$bin/$KUEUE_VERSION/kueue-crds"
fi

link() { ln -sfn "$bin/$2/$1" "$bin/$1"; }
link etcd "$ETCD_VERSION"
link helm "$HELM_VERSION"
for b in kube-apiserver kube-controller-manager kube-scheduler kubectl; do link "$b" "$K8S_VERSION"; done
link kueue "$KUEUE_VERSION"
link kueue-crds "$KUEUE_VERSION"
for b in etcd helm kube-apiserver kube-controller-manager kube-scheduler kubectl kueue; do
  [[ -x $bin/$b ]] || { echo "tools: $bin/$b missing after build" >&2; exit 1; }
done
echo "tools: ready in $bin"
