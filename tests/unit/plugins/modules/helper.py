"""Run a module's main() with arguments and scripted run_command results (YAML case tables)."""
import json
import os
from unittest import mock

import yaml
from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args

from ansible_collections.hoptrace.k8s.plugins.module_utils import _capture_procs

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "..", "fixtures")


class Finished(Exception):
    def __init__(self, result):
        Exception.__init__(self, result.get("msg", ""))
        self.result = result


def _exit_json(self, **kwargs):
    kwargs.setdefault("changed", False)
    kwargs["failed"] = False
    raise Finished(kwargs)


def _fail_json(self, msg, **kwargs):
    kwargs.update(msg=msg, failed=True)
    raise Finished(kwargs)


def fixture_text(ref):
    """``@netinfo/route_v4.json`` -> that fixture's text; other strings as they are."""
    if isinstance(ref, str) and ref.startswith("@"):
        with open(os.path.join(FIXTURES, ref[1:])) as handle:
            return handle.read()
    return ref


class Script(object):
    """Expected commands in order; each answers (rc, out, err)."""

    def __init__(self, steps):
        self.steps = list(steps or [])
        self.calls = []

    def __call__(self, module, args, **kwargs):
        self.calls.append(list(args))
        assert self.steps, "unexpected command %r" % (args,)
        step = self.steps.pop(0)
        assert list(args) == step["command"], "expected %r, got %r" % (step["command"], args)
        if "environ_update" in step:
            assert kwargs.get("environ_update") == step["environ_update"]
        return step.get("rc", 0), fixture_text(step.get("out", "")), fixture_text(step.get("err", ""))


def run_module(module, args, commands=None, check_mode=False, bins=None):
    """Run ``module.main()``; returns (result dict, the Script)."""
    script = Script(commands)
    bins = bins if bins is not None else {}
    if check_mode:
        args = dict(args, _ansible_check_mode=True)

    def get_bin_path(self, name, required=False, opt_dirs=None):
        path = bins.get(name, "/testbin/%s" % name)
        if path is None and required:
            self.fail_json(msg="Failed to find required executable %s" % name)
        return path

    def run_command(self, argv, **kwargs):
        return script(self, argv, **kwargs)

    def run_at_once(mod, argvs):
        # the capture module starts these together (_capture_procs.run_at_once); the script answers them in order
        return [script(mod, argv, environ_update=_capture_procs.LC_ENV) for argv in argvs]

    parallel = mock.patch.object(_capture_procs, "run_at_once", run_at_once)
    with patch_module_args(args), parallel, \
            mock.patch.object(basic.AnsibleModule, "exit_json", _exit_json), \
            mock.patch.object(basic.AnsibleModule, "fail_json", _fail_json), \
            mock.patch.object(basic.AnsibleModule, "run_command", run_command), \
            mock.patch.object(basic.AnsibleModule, "get_bin_path", get_bin_path):
        try:
            module.main()
        except Finished as done:
            return json.loads(json.dumps(done.result)), script
    raise AssertionError("the module returned without exit_json/fail_json")


def load_cases(path):
    with open(path) as handle:
        return yaml.safe_load(handle)
