#!/usr/bin/env bash
# Generates the projectcalico.org/v3 DeepCopy methods
# (pkg/apis/projectcalico/v3/zz_generated.deepcopy.go) and CRDs (deploy/crds)
# from the Go types, with controller-gen pinned in hack/tools/codegen (its own
# module, so the generator's dependencies stay out of vecnet's go.mod).
#
#   hack/gencrd.sh            regenerate in place
#   hack/gencrd.sh --verify   regenerate into a temporary directory and fail
#                             if the committed files differ
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
export PATH="/usr/local/go/bin:$PATH"

verify=false
[[ "${1:-}" == "--verify" ]] && verify=true

bin="$root/.cache/tools"
mkdir -p "$bin"
(cd hack/tools/codegen && go build -o "$bin/controller-gen" sigs.k8s.io/controller-tools/cmd/controller-gen)
cg="$bin/controller-gen"

crddir=deploy/crds
apidir=pkg/apis/projectcalico/v3
if $verify; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  mkdir -p "$tmp/crds" "$tmp/api"
  cp -r "$apidir"/. "$tmp/api/"
  crddir="$tmp/crds"
fi

# DeepCopy. In --verify mode it is regenerated in place and compared with the
# saved copy, then the saved copy is put back.
"$cg" object:headerFile=hack/tools/codegen/boilerplate.go.txt paths=./pkg/apis/...
"$cg" crd:crdVersions=v1 paths=./pkg/apis/... output:crd:dir="$crddir"

# controller-gen cannot mark slice items nullable: IPAMBlock.spec.allocations
# holds null for each free address (Calico's layout), so its items get
# `nullable: true` here (as in Calico's own CRD).
f="$crddir/projectcalico.org_ipamblocks.yaml"
awk '
  { print }
  /^ *allocations:$/ { ind = match($0, /[^ ]/); want = 1; next }
  want && $0 ~ /^ *items:$/ && match($0, /[^ ]/) == ind + 2 {
    printf "%*snullable: true\n", ind + 3, ""; want = 0
  }
' "$f" >"$f.tmp" && mv "$f.tmp" "$f"

if $verify; then
  status=0
  if ! diff -r "$tmp/crds" deploy/crds; then
    echo "deploy/crds is stale: run hack/gencrd.sh" >&2; status=1
  fi
  if ! diff "$tmp/api/zz_generated.deepcopy.go" "$apidir/zz_generated.deepcopy.go"; then
    echo "$apidir/zz_generated.deepcopy.go is stale: run hack/gencrd.sh" >&2; status=1
    cp "$tmp/api/zz_generated.deepcopy.go" "$apidir/zz_generated.deepcopy.go"
  fi
  exit $status
fi
echo "generated $apidir/zz_generated.deepcopy.go and $(ls deploy/crds | wc -l) CRDs in deploy/crds"
