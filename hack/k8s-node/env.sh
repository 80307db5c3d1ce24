# source hack/k8s-node/env.sh: kubectl, vecnetctl, crimini (and the other
# binaries) on PATH, KUBECONFIG and VECNET_SOCKET set for the node up.sh made.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
export VECNET_SOCKET=$VECNETD_SOCK
