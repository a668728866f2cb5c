#!/usr/bin/env bash
# Certificates for the test bed (all on loopback): one CA, apiserver serving cert, admin client cert
# (system:masters), apiserver→kubelet client cert, kwok kubelet serving cert, service-account keys.
#   pki.sh <dir>   (idempotent)
#   pki.sh <dir> node <node name> <node IP>: also the real node's kubelet (serving and client) and
#   kube-proxy certificates (the node bed, tests/bed/node).
set -euo pipefail
dir="$1"; mkdir -p "$dir"; cd "$dir"
days=3650
cert() { # name subject [sans]
  local name="$1" subj="$2" sans="${3:-}"
  openssl genrsa -out "$name.key" 2048 2>/dev/null
  openssl req -new -key "$name.key" -subj "$subj" -out "$name.csr" 2>/dev/null
  local ext; ext="$(mktemp)"
  {
    echo "basicConstraints=CA:FALSE"
    echo "keyUsage=digitalSignature,keyEncipherment"
    if [[ -n $sans ]]; then echo "extendedKeyUsage=serverAuth,clientAuth"; echo "subjectAltName=$sans"
    else echo "extendedKeyUsage=clientAuth"; fi
  } >"$ext"
  openssl x509 -req -in "$name.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days $days \
    -extfile "$ext" -out "$name.crt" 2>/dev/null
  rm -f "$name.csr" "$ext"
}
if [[ ! -f .complete ]]; then
openssl genrsa -out ca.key 2048 2>/dev/null
openssl req -x509 -new -key ca.key -subj "/CN=zkscale-testbed-ca" -days $days -out ca.crt 2>/dev/null
cert apiserver "/CN=kube-apiserver" \
  "IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
cert admin "/O=system:masters/CN=zkscale-admin"
cert apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client"
cert kubelet "/CN=system:node:zkscale-node-0/O=system:nodes" "IP:127.0.0.1,DNS:localhost,DNS:zkscale-node-0"
openssl genrsa -out sa.key 2048 2>/dev/null
openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
touch .complete
fi
if [[ ${2:-} == node && ! -f .complete-node ]]; then
  cert node-kubelet "/CN=system:node:${3:?node name}/O=system:nodes" "IP:${4:?node IP},DNS:$3"
  cert kube-proxy "/CN=system:kube-proxy"
  touch .complete-node
fi
