#!/usr/bin/env bash
# ansible-test must run from .../ansible_collections/hoptrace/k8s: copy the tracked
# tree there (a symlink would resolve back to the repo root) and run sanity.
# Copied is what the collection ships (galaxy.yml's build_ignore) plus tests/unit and
# tests/sanity; the lab, the pytest-driven integration/e2e suites and the benchmarks are
# project tooling run by `make test` itself, not collection content (ansible-test would
# read tests/integration as its own integration targets).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
mkdir -p "$root/.build"
build=$(mktemp -d "$root/.build/sanity.XXXXXX")    # one copy per run: runs may overlap
trap 'rm -rf "$build"' EXIT
dest="$build/ansible_collections/hoptrace/k8s"
mkdir -p "$dest"
cd "$root"
git ls-files -co --exclude-standard -z | while IFS= read -r -d '' f; do
  [ -e "$f" ] || continue
  case "$f" in tests/lab/*|tests/integration/*|tests/e2e/*|benchmarks/*|.ci/*) continue ;; esac
  mkdir -p "$dest/$(dirname "$f")"; cp -p "$f" "$dest/$f"
done
cd "$dest"
git init -q . && git add -A >/dev/null 2>&1
export PATH="$root/.venv/bin:$PATH"
# ansible-test fetches get-pip.py (pip 24.2 for the pinned ansible-core) from a host
# outside the package index; put our offline equivalent where it looks first.
mkdir -p ~/.ansible/test/cache
cp "$root/tests/sanity/get_pip_shim.py" ~/.ansible/test/cache/get_pip_24_2.py
py=$("$root/.venv/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
ansible-test sanity --python "$py" --requirements --color no "$@"
