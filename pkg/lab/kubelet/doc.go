// Package kubelet is vecnet-lab's kubelet: just enough of a kubelet to run
// pods on a lab node (a network namespace on one machine) through the real
// vecnet CNI chain, so the lab exercises vecnet-agent and vecnetd exactly as
// a cluster does.
//
// For each pod bound to its node, Run
//
//   - makes the pod's network namespace, /var/run/netns/NetnsName(prefix, uid),
//     with lo up;
//   - calls CNI ADD through libcni with the node's conflist, as containerd
//     does (container id: the pod UID without dashes; CNI_ARGS
//     IgnoreUnknown=1, K8S_POD_NAMESPACE, K8S_POD_NAME,
//     K8S_POD_INFRA_CONTAINER_ID, K8S_POD_UID); a failure leaves the pod
//     Pending with reason NetworkNotReady and is retried with backoff;
//   - runs init containers one after the other, then every container, as
//     host processes inside the namespace (`ip netns exec`), each in its own
//     process group, output to RunDir/<namespace>_<pod>/<container>.log.
//     Images are not pulled or unpacked: command and args run from the
//     host's filesystem; a container without either runs `sleep infinity`,
//     like a pause container;
//   - restarts exited containers per restartPolicy with a 1s, 2s, 4s ... 30s
//     backoff, and writes the pod status (phase, IPs, conditions, container
//     states, restart counts) the way the kubelet does;
//   - on deletion sends SIGTERM, waits for the grace period (at most 10s),
//     sends SIGKILL, calls CNI DEL, removes the namespace and deletes the
//     pod object with grace period 0, which finishes a graceful deletion.
//
// Environment: PATH (the kubelet's), HOME=/root, HOSTNAME=<pod name>, then
// env[].value with $(VAR) expanded; of valueFrom only fieldRef is read
// (name, namespace, uid, labels, annotations, nodeName,
// serviceAccountName, podIP(s), hostIP(s)). hostNetwork pods get no netns
// and no CNI call: their processes run in the kubelet's own network
// namespace and their pod IPs are the node's InternalIPs.
//
// What it does not do: images, volumes, probes (a running container is
// ready), resource limits, cgroups, user/PID/UTS/mount namespaces
// (containers share the host's filesystem, hostname and process table),
// ephemeral containers, node registration and node status (the lab
// creates the Node objects), sidecar semantics for init containers with
// restartPolicy Always (they run as ordinary init containers, so one that
// never exits keeps the pod initializing).
//
// State: RunDir/pods/<uid>.json records, for every pod whose namespace or
// network the kubelet set up, what to undo; libcni's result cache (the
// prevResult CNI DEL gets) is RunDir/cni-cache. Both survive a restart of
// the kubelet: a pod that is Running with its namespace in place is
// adopted without a new CNI ADD. Processes cannot be adopted (they are not
// the new supervisor's children), so the ones left in the pod's namespace
// are killed and the containers started again, with their restart counts
// bumped; pods that vanished while the kubelet was down are torn down from
// their records.
package kubelet
