"""docs/report.schema.json describes report.json as the code writes it; README's jmespath examples work.

Real reports from lab runs (tests/unit/fixtures/reports/lab-*.json: healthy IPIP, same node, a port
refused with RST, a drop on node-b's tunnel, the same drop named by its netfilter rule) and fresh ones from the analysis are validated with a
small validator for the part of JSON Schema the file uses; the test also checks that the file uses
no keyword this validator would silently ignore, and that a wrong report is refused.
"""
import copy
import glob
import json
import os
import re

import jmespath
import pytest

from ansible_collections.hoptrace.k8s.plugins.plugin_utils import analysis

import _synth

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", ".."))
SCHEMA = json.load(open(os.path.join(ROOT, "docs", "report.schema.json")))
FIXTURES = sorted(glob.glob(os.path.join(ROOT, "tests", "unit", "fixtures", "reports", "lab-*.json")))
README = open(os.path.join(ROOT, "README.md")).read()

KNOWN = {"$schema", "title", "description", "type", "required", "properties", "additionalProperties", "items", "enum",
         "const", "$ref", "$defs", "oneOf", "minimum", "maximum", "minItems", "maxItems"}
TYPES = {"object": dict, "array": list, "string": str, "boolean": bool, "null": type(None)}


def _is(value, name):
    if name == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if name == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, TYPES[name])


def validate(value, schema, where="$", root=SCHEMA):
    """Errors (a list of strings) of ``value`` against ``schema``; [] when it is valid."""
    if "$ref" in schema:
        name = schema["$ref"].split("/")[-1]
        return validate(value, root["$defs"][name], where, root)
    errors = []
    if "oneOf" in schema:
        matches = [s for s in schema["oneOf"] if not validate(value, s, where, root)]
        if len(matches) != 1:
            errors.append("%s: matches %d of oneOf" % (where, len(matches)))
        return errors
    types = schema.get("type")
    if types is not None:
        types = types if isinstance(types, list) else [types]
        if not any(_is(value, t) for t in types):
            return ["%s: %r is not %s" % (where, value, "/".join(types))]
    if "enum" in schema and value not in schema["enum"]:
        errors.append("%s: %r not in %r" % (where, value, schema["enum"]))
    if "const" in schema and value != schema["const"]:
        errors.append("%s: %r is not %r" % (where, value, schema["const"]))
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            errors.append("%s: %r < %r" % (where, value, schema["minimum"]))
        if "maximum" in schema and value > schema["maximum"]:
            errors.append("%s: %r > %r" % (where, value, schema["maximum"]))
    if isinstance(value, dict):
        for key in schema.get("required", []):
            if key not in value:
                errors.append("%s: %s is required" % (where, key))
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties", True)
        for key, item in value.items():
            if key in props:
                errors.extend(validate(item, props[key], "%s.%s" % (where, key), root))
            elif extra is False:
                errors.append("%s: %s is not described in the schema" % (where, key))
            elif isinstance(extra, dict):
                errors.extend(validate(item, extra, "%s.%s" % (where, key), root))
    if isinstance(value, list):
        if "minItems" in schema and len(value) < schema["minItems"]:
            errors.append("%s: fewer than %d items" % (where, schema["minItems"]))
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            errors.append("%s: more than %d items" % (where, schema["maxItems"]))
        if "items" in schema:
            for i, item in enumerate(value):
                errors.extend(validate(item, schema["items"], "%s[%d]" % (where, i), root))
    return errors


def _keywords(schema, found):
    if isinstance(schema, dict):
        for key, value in schema.items():
            found.add(key)
            if key in ("properties", "$defs"):
                for sub in value.values():
                    _keywords(sub, found)
            elif key in ("items", "additionalProperties") and isinstance(value, dict):
                _keywords(value, found)
            elif key == "oneOf":
                for sub in value:
                    _keywords(sub, found)
    return found


def test_the_schema_uses_only_what_the_validator_checks():
    assert _keywords(SCHEMA, set()) <= KNOWN, _keywords(SCHEMA, set()) - KNOWN
    assert SCHEMA["properties"]["schema"]["const"] == analysis.SCHEMA_VERSION
    assert len(FIXTURES) == 5


@pytest.mark.parametrize("path", FIXTURES, ids=[os.path.basename(p) for p in FIXTURES])
def test_real_lab_reports_validate(path):
    data = json.load(open(path))
    assert validate(data, SCHEMA) == []


@pytest.mark.parametrize("kw", [{}, {"drop": ("request", 5)}, {"drop": ("response", 3)}, {"only": ("request", 2)}, {"no_response": True}],
                         ids=["healthy", "request-drop", "response-drop", "missed", "no-response"])
def test_fresh_analysis_validates(tmp_path, kw):
    plan, caps = _synth.make_trace(tmp_path, "ipip", **kw)
    data = json.loads(json.dumps(analysis.analyze(plan, caps)))
    assert validate(data, SCHEMA) == []


def test_a_wrong_report_is_refused():
    good = json.load(open(FIXTURES[0]))
    bad = copy.deepcopy(good)
    bad["hops"][2]["status"] = "lost"          # the code writes LOST
    bad["surprise"] = 1
    del bad["directions"]["response"]["stopped_at"]
    bad["directions"]["request"]["cause"] = {"kind": "reset", "confidence": "certain", "text": "x", "evidence": []}
    bad["run"]["port"] = 70000
    assert validate(bad, SCHEMA) == [
        "$.directions.request.cause: matches 0 of oneOf",
        "$.directions.response: stopped_at is required",
        "$.hops[2].status: 'lost' not in ['seen', 'LOST', 'partial', 'missed', 'none', 'unknown']",
        "$.run.port: 70000 > 65535",
        "$: surprise is not described in the schema",
    ]


# README "Reading report.json in a runbook": every expression shown there, evaluated on real reports
def _lab(name):
    return json.load(open(os.path.join(ROOT, "tests", "unit", "fixtures", "reports", "lab-%s.json" % name)))


EXAMPLES = [
    ("verdict", "drop", "response reached node-b calic25e805a467 and was not seen on node-b tunl0 (routing into the tunnel)"),
    ("hops[?status=='LOST'].join(' ', [direction, node, interface])", "drop",
     ["response node-b tunl0", "response node-b eth0", "response node-a eth0", "response node-a tunl0", "response node-a cali41f14107a8d"]),
    ("hops[?status=='LOST'].join(' ', [direction, node, interface])", "healthy", []),
    ("directions.*.stopped_at | [0]", "drop", "node-b tunl0"),
    ("directions.response.cause.[kind, confidence]", "refused", ["reset", "high"]),
]


@pytest.mark.parametrize("expression, fixture, expected", EXAMPLES)
def test_readme_jmespath_examples(expression, fixture, expected):
    assert expression in README, "README no longer shows %s" % expression
    assert jmespath.search(expression, _lab(fixture)) == expected


def test_readme_selectattr_example_matches_the_jmespath_one():
    """The json_query-free form in README: selectattr('status', 'equalto', 'LOST') | map(attribute='interface')."""
    assert "selectattr('status', 'equalto', 'LOST') | map(attribute='interface')" in README
    lost = [h["interface"] for h in _lab("drop")["hops"] if h["status"] == "LOST"]
    assert lost == ["tunl0", "eth0", "eth0", "tunl0", "cali41f14107a8d"]
    assert re.search(r"json_query.*community\.general", README, re.S)
