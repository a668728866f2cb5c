#!/usr/bin/env bash
# A ZooKeeper member outside the cluster (a migration's source host on the test bed): the
# e2e tests prepare <dir> (zoo.cfg, run.sh) and give zkscale these as --stop-cmd/--start-cmd.
# usage: source-member.sh start|stop <dir>
# Each call appends "<verb> <epoch seconds>" to <dir>/events, which the tests count.
set -euo pipefail
verb=${1:?start|stop} dir=${2:?member dir}
pidfile=$dir/pid
running() { [[ -f $pidfile ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }
case $verb in
start)
  echo "start $(date +%s.%N)" >>"$dir/events"
  if running; then echo "already running"; exit 0; fi
  # setsid: its own session, so the caller's exit does not take it down.
  setsid "$dir/run.sh" >>"$dir/zookeeper.log" 2>&1 </dev/null &
  echo $! >"$pidfile"
  ;;
stop)
  echo "stop $(date +%s.%N)" >>"$dir/events"
  running || { echo "not running"; exit 0; }
  pid=$(cat "$pidfile")
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || exit 0; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  ;;
*) echo "usage: $0 start|stop <dir>" >&2; exit 2 ;;
esac
