# Shared by up.sh / down.sh: paths, ports, process bookkeeping. Everything listens on 127.0.0.1.
BED="${ZKSCALE_BED:-${ZKSCALE_CACHE:-$HOME/.cache/zkscale}/bed}"
ETCD_PORT=23790 ETCD_PEER_PORT=23800 ETCD_METRICS_PORT=23810
APISERVER_PORT=16443 KCM_PORT=16457 SCHEDULER_PORT=16459 KUBELET_PORT=16250
NODE_NAME=zkscale-node-0
COMPONENTS=(pod-runner kwok kube-scheduler kube-controller-manager kube-apiserver etcd)

log() { echo "[bed $(date +%H:%M:%S)] $*" >&2; }

# start NAME CMD ARGS...: background process with its log and pid file, in its own process group.
start() {
  local name="$1"; shift
  log "starting $name"
  mkdir -p "$BED/cmds"
  printf '%q ' "$@" > "$BED/cmds/$name"   # restart.sh starts it again the same way
  setsid "$@" >>"$BED/logs/$name.log" 2>&1 < /dev/null &
  echo $! > "$BED/pids/$name.pid"
}

# stop NAME: SIGTERM to its process group, SIGKILL after 10 s.
stop() {
  local pid
  [[ -f "$BED/pids/$1.pid" ]] || return 0
  pid="$(cat "$BED/pids/$1.pid")"
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -KILL -- "-$pid" 2>/dev/null || true
  fi
  rm -f "$BED/pids/$1.pid"
}

wait_for() { # what seconds cmd...
  local what="$1" secs="$2"; shift 2
  local deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
      log "timed out after ${secs}s waiting for $what; last log lines:"
      tail -n 30 "$BED"/logs/*.log >&2 || true
      return 1
    fi
    sleep 0.5
  done
}

alive() { [[ -f "$BED/pids/$1.pid" ]] && kill -0 "$(cat "$BED/pids/$1.pid")" 2>/dev/null; }

bed_running() {
  local c; for c in "${COMPONENTS[@]}"; do alive "$c" || return 1; done
  curl -sf --cacert "$BED/pki/ca.crt" --cert "$BED/pki/admin.crt" --key "$BED/pki/admin.key" \
    "https://127.0.0.1:$APISERVER_PORT/readyz" >/dev/null 2>&1
}

# Stops every component (SIGTERM to its process group, then SIGKILL), runner first so it can stop
# the ZooKeeper processes it started; then anything still holding the bed's ports or paths.
bed_stop_all() {
  local c
  for c in "${COMPONENTS[@]}"; do stop "$c"; done
  # Anything started from the bed directory (ZooKeeper JVMs of a crashed runner).
  pkill -KILL -f -- "$BED/" 2>/dev/null || true
}

kubeconfig() { # path user
  cat >"$1" <<KC
apiVersion: v1
kind: Config
clusters:
- name: zkscale-bed
  cluster:
    server: https://127.0.0.1:$APISERVER_PORT
    certificate-authority: $BED/pki/ca.crt
users:
- name: $2
  user:
    client-certificate: $BED/pki/$2.crt
    client-key: $BED/pki/$2.key
contexts:
- name: zkscale-bed
  context: {cluster: zkscale-bed, user: $2, namespace: default}
current-context: zkscale-bed
KC
}
