# -*- coding: utf-8 -*-
# Copyright: hoptrace contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin hoptrace.k8s.trace_analyze: analyse hop captures on the controller."""

from __future__ import annotations

import os

import yaml

from ansible.errors import AnsibleActionFail
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.plugins.action import ActionBase

from ansible_collections.hoptrace.k8s.plugins.modules.trace_analyze import DOCUMENTATION
from ansible_collections.hoptrace.k8s.plugins.plugin_utils import analysis, pcapio, report, service_names

_DOC_KEYS = ("description", "version_added", "author", "notes", "seealso")


def _argspec(options):
    """DOCUMENTATION options -> argument_spec (the docs are the single source of truth)."""
    spec = {}
    for name, opt in options.items():
        entry = {k: v for k, v in opt.items() if k not in _DOC_KEYS and k != "suboptions"}
        if "suboptions" in opt:
            entry["options"] = _argspec(opt["suboptions"])
        spec[name] = entry
    return spec


ARGUMENT_SPEC = _argspec(yaml.safe_load(DOCUMENTATION)["options"])


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        validated = ArgumentSpecValidator(ARGUMENT_SPEC).validate(self._task.args)
        if validated.error_messages:
            raise AnsibleActionFail("trace_analyze: invalid arguments: %s" % "; ".join(validated.error_messages))
        args = validated.validated_parameters
        out = os.path.expanduser(args["output_dir"])
        try:
            pcapio.require_dpkt()
            rep = analysis.analyze(args["plan"], args["captures"], args["vxlan_ports"], args["repeat"])
            service_names.apply(rep, args["names"])
            junit = os.path.abspath(os.path.expanduser(args["junit"])) if args["junit"] else None
            files = report.write_report_files(rep, out, junit=junit, pcapng="trace.pcapng" if args["merge_pcapng"] else None)
            if args["merge_pcapng"]:
                sources = [(c["key"], c["file"]) for c in args["captures"]
                           if c.get("status") == "ok" and c.get("file") and os.path.exists(c["file"])]
                files["pcapng"] = os.path.join(out, "trace.pcapng")
                pcapio.write_merged_pcapng(files["pcapng"], sources)
        except pcapio.CaptureError as exc:
            raise AnsibleActionFail("trace_analyze: %s" % exc)
        except (KeyError, ValueError, OSError) as exc:
            raise AnsibleActionFail("trace_analyze: could not analyse the captures in %s: %s" % (out, exc), orig_exc=exc)
        rep["files"] = files
        result.update(changed=True, report=rep, healthy=rep["healthy"], verdict=rep["verdict"], why=rep["why"],
                      files=files)
        return result
