"""One pytest run collects tests/unit, lab, integration, e2e and benchmarks together (make test), with
rootdir-relative imports: two test modules with one basename break collection (import file mismatch)."""
import collections
import os

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_test_module_basenames_are_unique():
    seen = collections.defaultdict(list)
    for top in ("tests", "benchmarks"):
        for folder, dirs, files in os.walk(os.path.join(ROOT, top)):
            dirs[:] = [d for d in dirs if d != "__pycache__"]
            for name in files:
                if name.startswith("test_") and name.endswith(".py"):
                    seen[name].append(os.path.relpath(os.path.join(folder, name), ROOT))
    assert {name: paths for name, paths in seen.items() if len(paths) > 1} == {}
