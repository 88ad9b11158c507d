# -*- coding: utf-8 -*-
# Copyright (c) hoptrace developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a user may give as src or dst: a pod IP, ``namespace/pod``, or (dst only) a Service as
``svc/namespace/service``.

Names are only parsed here; resolving them to IPs needs cluster access and is the role's job.
A Service is named with kubectl's own resource prefix (``svc/`` or ``service/``) and never guessed:
``namespace/name`` is always a pod, as it always was, so one text never means two things.
"""

from __future__ import annotations

import re

from ansible_collections.hoptrace.k8s.plugins.plugin_utils.validation import ValidationError, validate_ip

# Kubernetes object names: DNS-1123 subdomain for pods, DNS-1123 label for namespaces.
_NAMESPACE_RE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_POD_RE = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
# Service names are DNS-1035 labels (a letter first, at most 63 characters)
_SERVICE_RE = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")
SERVICE_PREFIXES = ("svc/", "service/")
_DST_HINT = ", or a Service as svc/namespace/service (svc/default/web)"


def service_ref(text, what="dst"):
    """``{namespace, name, text}`` of a Service named ``svc/namespace/service`` (or ``service/...``),
    None when ``text`` has no such prefix; ValidationError for a bad name or a Service as src."""
    prefix = next((p for p in SERVICE_PREFIXES if text.startswith(p)), None)
    if prefix is None:
        return None
    if what != "dst":
        raise ValidationError("%s %r is a Service: a trace starts inside a pod; give the source pod's IP or namespace/pod, "
                              "and the Service as dst" % (what, text))
    namespace, sep, name = text[len(prefix):].partition("/")
    if not sep or not _NAMESPACE_RE.match(namespace) or not _SERVICE_RE.match(name):
        raise ValidationError(
            "%s %r is not svc/namespace/service: Service names are lower-case letters, digits and '-', starting with "
            "a letter (e.g. svc/openshift-ingress/router-internal-default)" % (what, text))
    return {"namespace": namespace, "name": name, "text": "svc/%s/%s" % (namespace, name)}


def pod_ref(value, what="src"):
    """Classify ``value``: ``{ip, namespace, name}`` with either ``ip`` or the two names set.

    Anything else (shell metacharacters, spaces, a bad address) raises :class:`ValidationError`.
    """
    text = value if isinstance(value, str) else str(value if value is not None else "")
    text = text.strip()
    if not text:
        raise ValidationError("%s is empty; give a pod IP (172.17.25.79) or namespace/pod" % what)
    if service_ref(text, what) is not None:
        raise ValidationError("%s %r names a Service, not a pod (service_ref() reads it)" % (what, value))
    hint = _DST_HINT if what == "dst" else ""
    if "/" in text:
        namespace, _sep, name = text.partition("/")
        if not _NAMESPACE_RE.match(namespace) or not _POD_RE.match(name):
            raise ValidationError(
                "%s %r is neither an IP address nor namespace/pod: Kubernetes names are lower-case letters, digits, '-' and '.' "
                "(e.g. openshift-ingress/router-default-77949c967-4t8f7)%s" % (what, value, hint)
            )
        return {"ip": None, "namespace": namespace, "name": name}
    try:
        return {"ip": validate_ip(text, what), "namespace": None, "name": None}
    except ValidationError:
        raise ValidationError(
            "%s %r is neither an IP address nor namespace/pod; give a pod IP (172.17.25.79) or "
            "namespace/pod (openshift-ingress/router-a)%s" % (what, value, hint)
        ) from None
