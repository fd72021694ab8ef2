#!/usr/bin/env bash
# Builds (once per pinned version) the Argo engines the GitOps tests run as processes:
# the Argo CD multi-call binary (application controller and repo server), argocd-healthcheck
# (Argo CD's health assessment of health_test.yaml, tools/argocd/healthcheck), kustomize (which
# Argo CD's repo server runs), and the Argo Rollouts controller. Their CRDs are copied from
# the engines' modules into ~/.cache/quantgate/bin/{argocd,rollouts}-crds/. Same cache layout as scripts/build-tools.sh: binaries in
# ~/.cache/quantgate/bin/<version>/, stable links in ~/.cache/quantgate/bin/, and a
# stamp per build that records the pin and the wrapper go.mod (a changed pin rebuilds).
set -euo pipefail

ARGOCD_VERSION=v3.6.1
ROLLOUTS_VERSION=v1.10.2
KUSTOMIZE_VERSION=v5.8.3  # what Argo CD v3.6.1's image ships (its hack/tool-versions.sh)
# Both modules declare a newer Go than the pinned local toolchain; `go` fetches this one
# from the module proxy (golang.org/toolchain) once and caches it in the module cache.
ARGO_GO=go1.27.3

root=$(cd "$(dirname "$0")/.." && pwd)
cache=${QUANTGATE_CACHE:-$HOME/.cache/quantgate}
bin=$cache/bin
mkdir -p "$bin"

export GOTOOLCHAIN=$ARGO_GO CGO_ENABLED=0 GOFLAGS="-mod=mod -trimpath -p=2"

build() {  # build NAME VERSION MODULE_DIR LDFLAGS OUTPUT PKG
  local name=$1 version=$2 dir=$3 ldflags=$4 output=$5 pkg=$6
  local out=$bin/$version
  local stamp=$out/.built-$name
  local want="$version $(cd "$root/tools/$dir" && find . -name go.mod -o -name '*.go' | sort | xargs cat | sha256sum | cut -c1-16)"
  if [[ -f $stamp && $(cat "$stamp") == "$want" && -x $out/$output ]]; then
    echo "tools: $name $version cached in $out"
  else
    echo "tools: building $name $version (first time takes minutes) ..."
    local t0=$SECONDS
    mkdir -p "$out"
    (cd "$root/tools/$dir" && nice -n 10 go build -pgo=off -ldflags "$ldflags" -o "$out/$output" "$pkg")
    echo "$want" > "$stamp"
    echo "tools: built $name $version in $((SECONDS - t0))s"
  fi
}

build argo-rollouts "$ROLLOUTS_VERSION" rollouts \
  "-s -w -X github.com/argoproj/argo-rollouts/utils/version.version=${ROLLOUTS_VERSION#v}" \
  rollouts-controller github.com/argoproj/argo-rollouts/cmd/rollouts-controller

# Argo CD's health assessment (settings manager + gitops-engine + util/lua) as a small command,
# for health_test.yaml: tools/argocd/healthcheck/main.go.
build argocd-healthcheck "$ARGOCD_VERSION" argocd "-s -w" argocd-healthcheck ./healthcheck
build kustomize "$KUSTOMIZE_VERSION" kustomize \
  "-s -w -X sigs.k8s.io/kustomize/api/provenance.version=kustomize/$KUSTOMIZE_VERSION" \
  kustomize sigs.k8s.io/kustomize/kustomize/v5
build argocd "$ARGOCD_VERSION" argocd \
  "-s -w -X github.com/argoproj/argo-cd/v3/common.version=${ARGOCD_VERSION#v} \
  -X github.com/argoproj/argo-cd/v3/common.gitTreeState=clean" \
  argocd github.com/argoproj/argo-cd/v3/cmd

crds() {  # crds ENGINE MODULE_DIR MODULE: the CRDs of the module version the wrapper pins
  local dir
  dir=$(cd "$root/tools/$2" && go list -m -f '{{.Dir}}' "$3")
  rm -rf "$bin/$1-crds.tmp" && mkdir -p "$bin/$1-crds.tmp"
  cp "$dir"/manifests/crds/*-crd.yaml "$bin/$1-crds.tmp/"
  rm -rf "$bin/$1-crds" && mv "$bin/$1-crds.tmp" "$bin/$1-crds"
}
crds argocd argocd github.com/argoproj/argo-cd/v3
crds rollouts rollouts github.com/argoproj/argo-rollouts
# The repo server runs git-verify-wrapper.sh on every checkout (its image ships it from hack/).
cp "$(cd "$root/tools/argocd" && go list -m -f '{{.Dir}}' github.com/argoproj/argo-cd/v3)/hack/git-verify-wrapper.sh" \
  "$bin/$ARGOCD_VERSION/git-verify-wrapper.sh"
chmod 755 "$bin/$ARGOCD_VERSION/git-verify-wrapper.sh"

# Argo CD picks its role from argv[0]: one link per role next to the binary.
for role in argocd-application-controller argocd-repo-server; do
  ln -sfn argocd "$bin/$ARGOCD_VERSION/$role"
done
link() { ln -sfn "$bin/$2/$1" "$bin/$1"; }
link rollouts-controller "$ROLLOUTS_VERSION"
link kustomize "$KUSTOMIZE_VERSION"
for b in argocd argocd-application-controller argocd-repo-server argocd-healthcheck git-verify-wrapper.sh; do
  link "$b" "$ARGOCD_VERSION"
done
for b in rollouts-controller kustomize argocd argocd-application-controller argocd-repo-server argocd-healthcheck \
  git-verify-wrapper.sh; do
  [[ -x $bin/$b ]] || { echo "tools: $bin/$b missing after build" >&2; exit 1; }
done
echo "tools: argo engines ready in $bin"
