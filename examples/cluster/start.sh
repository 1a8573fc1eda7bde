#!/bin/sh
# Starts the example cluster: three Tocsin nodes (a, b, c) on 127.0.0.1, authenticated to each
# other with mutual TLS, each running examples/cluster/node-<name>.yml.
#
#   examples/cluster/start.sh [WORK_DIR]     (default: ./cluster-run)
#
# WORK_DIR receives the certificates (certs/), each node's data (<name>/data/), its log
# (<name>.log) and its process id (<name>.pid). HTTP APIs and UIs: http://127.0.0.1:9091/ (a),
# :9092 (b), :9093 (c). Stop the nodes with examples/cluster/stop.sh [WORK_DIR].
#
# TOCSIN names the binary; by default the release build of this checkout, else `tocsin` on PATH.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
work=${1:-cluster-run}
mkdir -p "$work"
work=$(cd "$work" && pwd)

if [ -z "${TOCSIN:-}" ]; then
  if [ -x "$here/../../target/release/tocsin" ]; then
    TOCSIN="$here/../../target/release/tocsin"
  else
    TOCSIN=tocsin
  fi
fi

# One CA and a certificate per node name. Run again, it keeps the CA and renews the nodes'
# certificates, so a cluster started earlier still trusts them.
"$TOCSIN" certs --dir "$work/certs" a b c >/dev/null

for node in a:9091 b:9092 c:9093; do
  name=${node%%:*}
  port=${node#*:}
  if [ -f "$work/$name.pid" ] && kill -0 "$(cat "$work/$name.pid")" 2>/dev/null; then
    echo "node $name is already running (pid $(cat "$work/$name.pid"))"
    continue
  fi
  mkdir -p "$work/$name"
  "$TOCSIN" \
    --config.file "$here/node-$name.yml" \
    --storage.path "$work/$name/data" \
    --web.listen-address "127.0.0.1:$port" \
    --cluster.tls-dir "$work/certs" \
    </dev/null >>"$work/$name.log" 2>&1 &
  echo $! >"$work/$name.pid"
  echo "node $name: pid $!, UI and API at http://127.0.0.1:$port/, log $work/$name.log"
done
