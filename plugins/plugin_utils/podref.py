# -*- coding: utf-8 -*-
# Copyright (c) hoptrace developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a user may give as src or dst: a pod IP, or ``namespace/pod``.

Names are only parsed here; resolving them to IPs needs cluster access and is the role's job.
"""

from __future__ import annotations

import re

from ansible_collections.hoptrace.k8s.plugins.plugin_utils.validation import ValidationError, validate_ip

# Kubernetes object names: DNS-1123 subdomain for pods, DNS-1123 label for namespaces.
_NAMESPACE_RE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_POD_RE = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")


def pod_ref(value, what="src"):
    """Classify ``value``: ``{ip, namespace, name}`` with either ``ip`` or the two names set.

    Anything else (shell metacharacters, spaces, a bad address) raises :class:`ValidationError`.
    """
    text = value if isinstance(value, str) else str(value if value is not None else "")
    text = text.strip()
    if not text:
        raise ValidationError("%s is empty; give a pod IP (172.17.25.79) or namespace/pod" % what)
    if "/" in text:
        namespace, _sep, name = text.partition("/")
        if not _NAMESPACE_RE.match(namespace) or not _POD_RE.match(name):
            raise ValidationError(
                "%s %r is neither an IP address nor namespace/pod: Kubernetes names are lower-case letters, digits, '-' and '.' "
                "(e.g. openshift-ingress/router-default-77949c967-4t8f7)" % (what, value)
            )
        return {"ip": None, "namespace": namespace, "name": name}
    try:
        return {"ip": validate_ip(text, what), "namespace": None, "name": None}
    except ValidationError:
        raise ValidationError(
            "%s %r is neither an IP address nor namespace/pod; give a pod IP (172.17.25.79) or "
            "namespace/pod (openshift-ingress/router-a)" % (what, value)
        ) from None
