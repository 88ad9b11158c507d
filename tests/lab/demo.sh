#!/usr/bin/env bash
# Demo (make demo): bring the lab up (ipip, 2 nodes), show the route a Calico node uses for the
# remote block, curl across nodes from the seed's source pod, print the pods, bring the lab down.
# The trace will replace the middle part.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
LAB="$PY tests/lab/lab.py"
exec 9>>/run/hoptrace-lab-tests.lock    # wait while a test run is using the lab
flock 9

$LAB up --mode ipip --nodes 2
trap '$LAB down' EXIT

echo; echo "== ip route on node-a"
$LAB exec node-a -- ip route

echo; echo "== curl -k https://172.17.25.239 from pod 172.17.25.79 (node-a -> node-b over IPIP)"
$LAB pod-exec 172.17.25.79 -- curl -sk --max-time 5 \
  -w 'connect %{time_connect}s  tls %{time_appconnect}s  total %{time_total}s\n' https://172.17.25.239

echo; echo "== pods"
$LAB status
