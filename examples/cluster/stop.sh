#!/bin/sh
# Stops the nodes examples/cluster/start.sh started (SIGTERM: each finishes within 10 s).
#
#   examples/cluster/stop.sh [WORK_DIR]     (default: ./cluster-run)
set -eu
work=${1:-cluster-run}
for name in a b c; do
  pid_file="$work/$name.pid"
  [ -f "$pid_file" ] || continue
  pid=$(cat "$pid_file")
  if kill "$pid" 2>/dev/null; then
    echo "node $name (pid $pid) stopping"
  fi
  rm -f "$pid_file"
done
