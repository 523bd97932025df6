#!/usr/bin/env bash
# Builds the pinned test-bed binaries into bin/ (or $BIN_DIR): kube-apiserver,
# kube-controller-manager and kubectl from hack/tools/kube, etcd from
# hack/tools/etcd and caddy from hack/tools/caddy. A binary that already
# reports its pinned version is skipped, so a warm bin/ costs a few
# milliseconds. Prints how long each build took.
#
# Usage: hack/build-tools.sh [kube|etcd|caddy]...   (default: all three)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin_dir="${BIN_DIR:-$root/bin}"
mkdir -p "$bin_dir"

KUBE_VERSION=v1.37.2
ETCD_VERSION=3.7.3
CADDY_VERSION=v2.11.9

# has_version BINARY PATTERN ARGS... succeeds when BINARY exists and its
# version output contains PATTERN.
has_version() {
  local binary="$1" pattern="$2"
  shift 2
  [[ -x "$binary" ]] && "$binary" "$@" 2>/dev/null | grep -qF -- "$pattern"
}

# timed NAME COMMAND... runs COMMAND and prints its wall-clock duration.
timed() {
  local name="$1" start end
  shift
  start=$(date +%s)
  echo "build-tools: building $name" >&2
  "$@"
  end=$(date +%s)
  echo "build-tools: built $name in $((end - start))s" >&2
}

build_kube() {
  if has_version "$bin_dir/kube-apiserver" "Kubernetes $KUBE_VERSION" --version &&
    has_version "$bin_dir/kube-controller-manager" "Kubernetes $KUBE_VERSION" --version &&
    has_version "$bin_dir/kubectl" "Client Version: $KUBE_VERSION" version --client; then
    echo "build-tools: kube $KUBE_VERSION is up to date" >&2
    return
  fi

  # Without these the binaries report v0.0.0, and kubectl warns about skew.
  local pkg=k8s.io/component-base/version
  local minor="${KUBE_VERSION#v1.}"
  minor="${minor%%.*}"
  local ldflags="-s -w -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  ldflags+=" -X $pkg.gitTreeState=clean"

  # One go build for all three, so they share compiled packages.
  (cd "$root/hack/tools/kube" && timed "kube $KUBE_VERSION" \
    env CGO_ENABLED=0 go build -ldflags "$ldflags" -o "$bin_dir/" \
    k8s.io/kubernetes/cmd/kube-apiserver \
    k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kubectl)
}

build_etcd() {
  if has_version "$bin_dir/etcd" "etcd Version: $ETCD_VERSION" --version; then
    echo "build-tools: etcd $ETCD_VERSION is up to date" >&2
    return
  fi

  (cd "$root/hack/tools/etcd" && timed "etcd $ETCD_VERSION" \
    env CGO_ENABLED=0 go build -ldflags "-s -w" -o "$bin_dir/etcd" go.etcd.io/etcd/server/v3)
}

# caddy_version prints the version of the Caddy module built into the
# binary $1. `caddy version` prints "unknown" for a build from a wrapper
# module, so read the build information instead.
caddy_version() {
  go version -m "$1" 2>/dev/null | awk '$2 == "github.com/caddyserver/caddy/v2" { print $3 }'
}

build_caddy() {
  if [[ -x "$bin_dir/caddy" && "$(caddy_version "$bin_dir/caddy")" == "$CADDY_VERSION" ]]; then
    echo "build-tools: caddy $CADDY_VERSION is up to date" >&2
    return
  fi

  (cd "$root/hack/tools/caddy" && timed "caddy $CADDY_VERSION" \
    env CGO_ENABLED=0 go build -ldflags "-s -w" -o "$bin_dir/caddy" github.com/caddyserver/caddy/v2/cmd/caddy)
}

targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then
  targets=(etcd caddy kube)
fi

for target in "${targets[@]}"; do
  case "$target" in
    kube) build_kube ;;
    etcd) build_etcd ;;
    caddy) build_caddy ;;
    *)
      echo "build-tools: unknown target '$target' (want kube, etcd or caddy)" >&2
      exit 2
      ;;
  esac
done
