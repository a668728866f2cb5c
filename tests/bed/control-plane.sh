# The bed's control plane, shared by up.sh (simulated node) and node/up.sh (real node): etcd,
# kube-apiserver, kube-controller-manager, kube-scheduler on 127.0.0.1. Sourced after lib.sh,
# with K8S_BIN set and the PKI in $BED/pki.

control_plane_up() {
  local P="$BED/pki"
  start etcd "$K8S_BIN/etcd" --name bed --data-dir "$BED/etcd" \
    --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster "bed=http://127.0.0.1:$ETCD_PEER_PORT" --listen-metrics-urls "http://127.0.0.1:$ETCD_METRICS_PORT" \
    --unsafe-no-fsync --quota-backend-bytes=2147483648
  wait_for "etcd" 60 curl -sf "http://127.0.0.1:$ETCD_PORT/health"

  # Audit log: writes to StatefulSets at Metadata level (the guard's audit annotations land there).
  cat > "$BED/audit-policy.yaml" <<'AUDIT'
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: Metadata
    resources: [{group: "apps", resources: ["statefulsets", "statefulsets/scale"]}]
    verbs: ["update", "patch"]
  - level: None
AUDIT

  # --endpoint-reconciler-type=none: a loopback advertise address is not a valid Endpoints address.
  start kube-apiserver "$K8S_BIN/kube-apiserver" \
    --audit-policy-file "$BED/audit-policy.yaml" --audit-log-path "$BED/logs/audit.log" \
    --etcd-servers "http://127.0.0.1:$ETCD_PORT" \
    --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$APISERVER_PORT" \
    --endpoint-reconciler-type none \
    --service-cluster-ip-range 10.96.0.0/16 \
    --client-ca-file "$P/ca.crt" --tls-cert-file "$P/apiserver.crt" --tls-private-key-file "$P/apiserver.key" \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-account-key-file "$P/sa.pub" --service-account-signing-key-file "$P/sa.key" \
    --authorization-mode Node,RBAC --allow-privileged=true \
    --kubelet-client-certificate "$P/apiserver-kubelet-client.crt" --kubelet-client-key "$P/apiserver-kubelet-client.key" \
    --kubelet-preferred-address-types InternalIP \
    --profiling=false
  wait_for "kube-apiserver" 120 curl -sf --cacert "$P/ca.crt" --cert "$P/admin.crt" --key "$P/admin.key" \
    "https://127.0.0.1:$APISERVER_PORT/readyz"

  start kube-controller-manager "$K8S_BIN/kube-controller-manager" \
    --kubeconfig "$BED/kubeconfig" --authentication-kubeconfig "$BED/kubeconfig" --authorization-kubeconfig "$BED/kubeconfig" \
    --bind-address 127.0.0.1 --secure-port "$KCM_PORT" --leader-elect=false --controllers '*' \
    --root-ca-file "$P/ca.crt" --service-account-private-key-file "$P/sa.key" \
    --cluster-signing-cert-file "$P/ca.crt" --cluster-signing-key-file "$P/ca.key" \
    --profiling=false
  start kube-scheduler "$K8S_BIN/kube-scheduler" \
    --kubeconfig "$BED/kubeconfig" --authentication-kubeconfig "$BED/kubeconfig" --authorization-kubeconfig "$BED/kubeconfig" \
    --bind-address 127.0.0.1 --secure-port "$SCHEDULER_PORT" --leader-elect=false --profiling=false
}

storage_class() {
  # Storage the way a local-path provisioner does it: the scheduler picks the node first
  # (WaitForFirstConsumer), then the runner creates a hostPath PV for the claim.
  $HELM4_BIN/kubectl --kubeconfig "$BED/kubeconfig" apply -f - >&2 <<'SC'
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: bed-local
  annotations: {storageclass.kubernetes.io/is-default-class: "true"}
provisioner: zkscale.bed/hostpath
volumeBindingMode: WaitForFirstConsumer
reclaimPolicy: Delete
SC
}
