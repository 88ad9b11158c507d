"""Benchmarks' tests: the checkout's collection and the lab's pytest plugin importable, as
tests/conftest.py arranges for tests under tests/ (lab.fixtures lives in tests/lab)."""
import os
import sys

TESTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests")
if TESTS not in sys.path:
    sys.path.insert(0, TESTS)

import conftest as _tests_conftest  # noqa: E402,F401 - tests/conftest.py: .collections on sys.path
