"""Fixtures shared by the end-to-end suites."""
import pytest


@pytest.fixture
def fake_ssh(tmp_path):
    """An ssh that only records that it was called: proves no task touched a node."""
    marker = tmp_path / "ssh-was-called"
    script = tmp_path / "fake-ssh"
    script.write_text("#!/bin/sh\necho \"$@\" >> %s\nexit 255\n" % marker)
    script.chmod(0o755)
    return script, marker
