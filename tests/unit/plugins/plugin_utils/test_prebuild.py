# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""prebuild: the payload of a module a later task runs is built into Ansible's own cache.

Uses ansible-core's real module builder and plugin loader (no node: the build is controller-side),
in a child process of its own, where the collection loader is set up as ansible-playbook does it.
"""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", ".."))

CHILD = r'''
import base64, io, json, os, pickle, sys, zipfile
from types import SimpleNamespace
from ansible import constants as C
from ansible.executor import module_common
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar
from ansible.plugins.loader import init_plugin_loader, module_loader
init_plugin_loader([sys.argv[1]])
C.DEFAULT_LOCAL_TMP = sys.argv[2]
from ansible_collections.hoptrace.k8s.plugins.plugin_utils import prebuild

def cached():
    folder = os.path.join(sys.argv[2], "ansiballz_cache")
    return sorted(p for p in os.listdir(folder) if not p.endswith(".lock")) if os.path.isdir(folder) else []

action = SimpleNamespace(_loader=DataLoader(), _shared_loader_obj=SimpleNamespace(module_loader=module_loader),
                         _task=SimpleNamespace(collections=None))
out = {}
for names in (None, [], "hoptrace.k8s.probe", {"a": 1}):
    build = prebuild.Prebuild(action, names, {})
    build.begin()
    build.finish()
    out.setdefault("empty", []).append([build.thread is None, cached()])
build = prebuild.Prebuild(action, ["hoptrace.k8s.probe", 7, "", "hoptrace.k8s.no_such_module"], {})
out["names"] = build.names
build.begin()
first = build.thread
build.begin()
build.finish(60)
out["once"] = build.thread is first and not first.is_alive()
out["cached"] = cached()
with open(os.path.join(sys.argv[2], "ansiballz_cache", out["cached"][0]), "rb") as handle:
    out["zip"] = zipfile.ZipFile(io.BytesIO(base64.b64decode(pickle.load(handle).zip_data))).namelist()
found = module_loader.find_plugin_with_context("hoptrace.k8s.probe")
built = module_common.modify_module(module_name="hoptrace.k8s.probe", module_path=found.plugin_resolved_path,
                                    module_args={"src": "172.17.25.79"}, templar=Templar(loader=DataLoader()),
                                    task_vars={"ansible_python_interpreter": "/opt/python3/bin/python3"},
                                    module_compression="ZIP_DEFLATED")
out["shebang"] = built.shebang
out["cached_after"] = cached()
print(json.dumps(out))
'''


@pytest.fixture(scope="module")
def child(tmp_path_factory):
    tmp = str(tmp_path_factory.mktemp("ansible-local"))
    proc = subprocess.run([sys.executable, "-c", CHILD, os.path.join(ROOT, ".collections"), tmp],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_nothing_to_build_starts_nothing(child):
    assert child["empty"] == [[True, []]] * 4


def test_the_build_lands_where_the_task_looks_it_up(child):
    assert child["names"] == ["hoptrace.k8s.probe", "hoptrace.k8s.no_such_module"]
    assert child["once"] is True
    # an unknown module is left alone; the probe's payload is in the cache under the key a task looks up
    assert child["cached"] == ["ansible_collections.hoptrace.k8s.plugins.modules.probe-ZIP_DEFLATED-none"]
    assert "ansible_collections/hoptrace/k8s/plugins/modules/probe.py" in child["zip"]
    assert "ansible_collections/hoptrace/k8s/plugins/module_utils/_netns.py" in child["zip"]


def test_the_task_keeps_its_own_interpreter_and_builds_nothing_more(child):
    assert child["shebang"] == "#!/opt/python3/bin/python3"
    assert child["cached_after"] == child["cached"]
