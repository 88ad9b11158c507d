"""Fixtures shared by the end-to-end suites."""
import os

import pytest
from test_trace import ROOT, _env


@pytest.fixture
def fake_ssh(tmp_path):
    """An ssh that only records that it was called: proves no task touched a node."""
    marker = tmp_path / "ssh-was-called"
    script = tmp_path / "fake-ssh"
    script.write_text("#!/bin/sh\necho \"$@\" >> %s\nexit 255\n" % marker)
    script.chmod(0o755)
    return script, marker


@pytest.fixture
def standin_kubectl(tmp_path):
    """The stand-in kubectl (tests/lab/standin_kubectl.py) as `kubectl`, first on PATH: (env, state directory)."""
    state, bindir = tmp_path / "standin", tmp_path / "bin"
    state.mkdir()
    bindir.mkdir()
    os.symlink(os.path.join(ROOT, "tests", "lab", "standin_kubectl.py"), bindir / "kubectl")
    return _env(HOPTRACE_STANDIN_DIR=str(state), PATH="%s%s%s" % (bindir, os.pathsep, _env()["PATH"])), state
