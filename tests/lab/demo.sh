#!/usr/bin/env bash
# make demo [MODE=ipip|vxlan|bgp|flannel|...]: bring the lab cluster up (2 nodes, IPIP unless MODE says
# otherwise), trace the seed's flow 172.17.25.79 (node-a) -> 172.17.25.239:443 (node-b), or the
# mode's own pair (`lab.py demo-flow`), hop by hop with the real playbook over SSH, print the hop
# table and the verdict, keep the run folder, bring the lab down.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
LAB="$PY tests/lab/lab.py"
exec 9>>/run/hoptrace-lab-tests.lock    # wait while a test run is using the lab
flock 9

MODE=${MODE:-ipip}
$LAB up --mode "$MODE" --nodes 2 ${IPV6:+--ipv6}
trap '$LAB down' EXIT
read -r SRC DST PORT < <($LAB demo-flow)

echo
echo "\$ ansible-playbook -i .lab/inventory.ini playbooks/trace_flow.yml -e src=$SRC -e dst=$DST -e port=$PORT"
rc=0
ANSIBLE_CONFIG=$PWD/ansible.cfg .venv/bin/ansible-playbook -i .lab/inventory.ini playbooks/trace_flow.yml \
  -e src="$SRC" -e dst="$DST" -e port="$PORT" -e output_dir=./traces || rc=$?
run=$(ls -td traces/*/ 2>/dev/null | head -1)
if [ -n "$run" ]; then
  echo
  echo "run folder: $run"
  (cd "$run" && find . -type f | sort | sed 's|^\./|  |')
fi
exit $rc
