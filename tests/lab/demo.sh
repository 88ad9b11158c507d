#!/usr/bin/env bash
# make demo: bring the lab cluster up (IPIP, 2 nodes), trace the seed's flow
# 172.17.25.79 (node-a) -> 172.17.25.239:443 (node-b) hop by hop with the real playbook over
# SSH, print the hop table and the verdict, keep the run folder, bring the lab down.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
LAB="$PY tests/lab/lab.py"
exec 9>>/run/hoptrace-lab-tests.lock    # wait while a test run is using the lab
flock 9

$LAB up --mode ipip --nodes 2
trap '$LAB down' EXIT

echo
echo "\$ ansible-playbook -i .lab/inventory.ini playbooks/trace_flow.yml -e src=172.17.25.79 -e dst=172.17.25.239"
rc=0
ANSIBLE_CONFIG=$PWD/ansible.cfg .venv/bin/ansible-playbook -i .lab/inventory.ini playbooks/trace_flow.yml \
  -e src=172.17.25.79 -e dst=172.17.25.239 -e output_dir=./traces || rc=$?
run=$(ls -td traces/*/ 2>/dev/null | head -1)
if [ -n "$run" ]; then
  echo
  echo "run folder: $run"
  (cd "$run" && find . -type f | sort | sed 's|^\./|  |')
fi
exit $rc
