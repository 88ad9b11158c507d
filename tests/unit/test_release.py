"""Release artifacts: the collection tarball, and the execution environment (EE) built from it.

Checks what ansible-builder does with this collection without a container engine: the build
context of ../execution-environment.yml (``ansible-builder create``), and the requirements
ansible-builder's introspection finds in the installed collection, which is what the image's
builder stage installs. ansible-builder is required (requirements-dev.txt): a missing one fails.
"""
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile

import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.dirname(sys.executable)


def tool(name):
    path = os.path.join(BIN, name)
    if not os.access(path, os.X_OK):
        path = shutil.which(name)
    if not path:
        pytest.fail("%s is not installed: pip install -r requirements-dev.txt" % name)
    return path


def run(args, cwd, env=None):
    done = subprocess.run(args, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=300, check=False)
    assert done.returncode == 0, "%s failed (%d):\n%s" % (" ".join(args), done.returncode, done.stdout)
    return done.stdout


def requirement_lines(name):
    with open(os.path.join(ROOT, name)) as handle:
        return [line.strip() for line in handle if line.strip() and not line.startswith("#")]


@pytest.fixture(scope="module")
def work():
    with tempfile.TemporaryDirectory(prefix="hoptrace-release.") as tmp:
        env = dict(os.environ, ANSIBLE_HOME=os.path.join(tmp, "home"))
        with open(os.path.join(ROOT, "galaxy.yml")) as handle:
            galaxy = yaml.safe_load(handle)
        name = "%s-%s-%s.tar.gz" % (galaxy["namespace"], galaxy["name"], galaxy["version"])
        run([tool("ansible-galaxy"), "collection", "build", "--force", "--output-path", tmp, ROOT], ROOT, env)
        assert os.path.isfile(os.path.join(tmp, name))
        yield {"tmp": tmp, "env": env, "name": name, "tarball": os.path.join(tmp, name)}


def test_tarball_ships_ee_metadata_and_changelog_but_no_tooling(work):
    with tarfile.open(work["tarball"]) as tar:
        names = set(tar.getnames())
    for shipped in ("requirements.txt", "bindep.txt", "meta/execution-environment.yml", "meta/runtime.yml",
                    "CHANGELOG.rst", "changelogs/changelog.yaml", "README.md"):
        assert shipped in names
    tops = {name.split("/")[0] for name in names}
    for left_out in (".ansible", ".venv", ".collections", ".lab", ".build", ".ansible-lint", "traces",
                     "benchmarks", "Makefile", "ansible.cfg", "execution-environment.yml", "requirements-dev.txt"):
        assert left_out not in tops
    assert not [name for name in names if name.startswith(("tests/unit", "tests/e2e", "tests/lab", "tests/integration"))]
    assert "changelogs/.plugin-cache.yaml" not in names


def test_ee_build_context_installs_the_collection_tarball(work):
    tmp = work["tmp"]
    ee_dir = os.path.join(tmp, "ee")
    os.mkdir(ee_dir)
    shutil.copy(os.path.join(ROOT, "execution-environment.yml"), ee_dir)
    shutil.copy(work["tarball"], ee_dir)
    context = os.path.join(tmp, "context")
    run([tool("ansible-builder"), "create", "-f", os.path.join(ee_dir, "execution-environment.yml"),
         "-c", context, "--output-filename", "Containerfile"], ee_dir, work["env"])
    build = os.path.join(context, "_build")
    # The tarball named after galaxy.yml's version is in the context ...
    copy = os.path.join(build, "collections", work["name"])
    assert os.path.isfile(copy), "execution-environment.yml does not name %s (galaxy.yml's version)" % work["name"]
    with open(copy, "rb") as copied, open(work["tarball"], "rb") as built:
        assert copied.read() == built.read()
    # ... and the galaxy stage installs it from there (it runs in /build, a copy of _build).
    with open(os.path.join(build, "requirements.yml")) as handle:
        galaxy = yaml.safe_load(handle)
    assert {"name": "collections/" + work["name"], "type": "file"} in galaxy["collections"]
    with open(os.path.join(context, "Containerfile")) as handle:
        containerfile = handle.read()
    assert "COPY _build /build" in containerfile and "WORKDIR /build" in containerfile
    assert "ansible-galaxy collection install $ANSIBLE_GALAXY_CLI_COLLECTION_OPTS -r requirements.yml" in containerfile
    assert "introspect.py introspect" in containerfile


def test_ee_introspection_finds_the_collection_requirements(work):
    tmp = work["tmp"]
    collections = os.path.join(tmp, "collections")
    run([tool("ansible-galaxy"), "collection", "install", "--force", "--offline", "-p", collections, work["tarball"]],
        tmp, work["env"])
    pip, bindep = os.path.join(tmp, "pip.txt"), os.path.join(tmp, "bindep.txt")
    run([tool("ansible-builder"), "introspect", collections, "--write-pip", pip, "--write-bindep", bindep], tmp, work["env"])
    with open(pip) as handle:
        found_pip = [line.split("#")[0].strip() for line in handle if line.strip()]
    with open(bindep) as handle:
        found_bindep = [line.split("#")[0].strip() for line in handle if line.strip()]
    expected_pip = requirement_lines("requirements.txt")
    assert {line.split(">")[0] for line in expected_pip} >= {"netaddr", "jmespath", "dpkt"}
    assert found_pip == expected_pip
    assert found_bindep == requirement_lines("bindep.txt")
    assert "openssh-clients [platform:rpm]" in found_bindep
