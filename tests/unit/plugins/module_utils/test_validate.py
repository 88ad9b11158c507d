"""module_utils/_validate: every string argument is checked before anything runs."""
import os
import socket

import pytest
import yaml

from ansible_collections.hoptrace.k8s.plugins.module_utils import _validate as v

with open(os.path.join(os.path.dirname(__file__), "test_validate.yaml")) as handle:
    TABLE = yaml.safe_load(handle)
CASES = [(name, case) for name, cases in TABLE.items() for case in cases]


@pytest.mark.parametrize("name,case", CASES, ids=["%s:%r" % (n, c["value"])[:60] for n, c in CASES])
def test_table(name, case):
    check = getattr(v, name)
    if "ok" in case:
        assert check(case["value"]) == case["ok"]
    else:
        with pytest.raises(ValueError) as err:
            check(case["value"])
        assert case["error"] in str(err.value)


def test_unknown_interface_names_the_node_and_the_choices():
    with pytest.raises(ValueError) as err:
        v.check_interface_exists("ethX", "node-b")
    msg = str(err.value)
    assert msg.startswith("interface 'ethX' does not exist on node-b: pick one of ")
    assert "lo" in msg


def test_existing_interface_and_any():
    name = socket.if_nameindex()[0][1]
    assert v.check_interface_exists(name, "node-a") == name
    assert v.check_interface_exists("any", "node-a") == "any"


@pytest.mark.parametrize("value,low,high", [(0, 1, 3600), (3601, 1, 3600), ("x", 1, 10)])
def test_check_range_refuses(value, low, high):
    with pytest.raises(ValueError):
        v.check_range(value, "deadline", low, high)
