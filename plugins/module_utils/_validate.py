# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# Private to hoptrace.k8s: argument checks shared by the node modules; not a public API.
"""Validation of module arguments before anything runs on the node.

Every check returns the normalised value or raises ``ValueError`` with a message that says
what is wrong and what to do about it. Nothing here runs a command.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type  # noqa: UP001 - ansible-test boilerplate

import ipaddress
import os
import re
import socket

IFNAME_RE = re.compile(r'[A-Za-z0-9_.@-]{1,15}')
ID_RE = re.compile(r'[A-Za-z0-9_.-]{1,64}')
# Characters a shell would act on, plus quote/escape characters; names and paths need none.
SHELL_META = (';', '|', '&', '`', '$', '<', '>', '\\', '\n', '\r', '\x00', "'", '"')
# BPF's own operators (``ip[0]&0xf==5``, ``len > 100``, ``a or b`` spelled ``||``) are harmless in
# an argv element and needed by the filters hoptrace builds; the rest never belongs in a filter.
FILTER_META = tuple(ch for ch in SHELL_META if ch not in ('&', '|', '<', '>'))
PATH_PART_RE = re.compile(r'[A-Za-z0-9_.+@=,:-]{1,255}')
OPTION_TOKEN_RE = re.compile(r'(^|\s)-[A-Za-z-]')
MAX_FILTER_LEN = 2048


def text(value):
    """Return ``value`` as text (modules may pass bytes on Python 2 era callers)."""
    if isinstance(value, bytes):
        return value.decode('utf-8', 'replace')
    return u'%s' % value


def _describe(value):
    return repr(text(value))[:80]


def check_ip(value, what='address'):
    """Return the canonical text of one IPv4/IPv6 address."""
    raw = text(value).strip()
    try:
        return str(ipaddress.ip_address(raw))
    except ValueError:
        raise ValueError('%s %s is not an IP address: give one IPv4 or IPv6 address such as 172.17.25.79'
                         % (what, _describe(value)))


def check_id(value):
    """Return a capture id usable as a file name."""
    raw = text(value)
    if not ID_RE.fullmatch(raw):
        raise ValueError('id %s is not allowed: use 1 to 64 characters from A-Z a-z 0-9 _ . - '
                         '(it becomes the file name <id>.pcap)' % _describe(value))
    if raw.startswith('-') or raw in ('.', '..'):
        raise ValueError('id %s is not allowed: it must not start with "-" or be "." or ".."' % _describe(value))
    return raw


def is_id(value):
    """True when ``value`` is a capture id that check_id accepts."""
    try:
        check_id(value)
    except ValueError:
        return False
    return True


def check_ifname(value):
    """Return an interface name that is syntactically valid (existence is checked separately)."""
    raw = text(value)
    if not IFNAME_RE.fullmatch(raw) or raw.startswith('-'):
        raise ValueError('interface %s is not a valid interface name: use 1 to 15 characters from '
                         'A-Z a-z 0-9 _ . @ - not starting with "-"' % _describe(value))
    return raw


def interface_names():
    """Names of the interfaces of the current network namespace (sorted)."""
    try:
        return sorted(name for dummy, name in socket.if_nameindex())
    except OSError:
        return []


def check_interface_exists(name, node, allow_any=True):
    """Raise unless ``name`` exists in this network namespace (``any`` is tcpdump's pseudo device)."""
    if allow_any and name == 'any':
        return name
    try:
        socket.if_nametoindex(name)
    except OSError:
        names = interface_names()
        raise ValueError("interface '%s' does not exist on %s: pick one of %s"
                         % (name, node, ', '.join(names) or '(no interfaces found)'))
    return name


def check_port(value, what='port'):
    try:
        port = int(value)
    except (TypeError, ValueError):
        raise ValueError('%s %s is not a number: give a port between 1 and 65535' % (what, _describe(value)))
    if not 1 <= port <= 65535:
        raise ValueError('%s %d is out of range: give a port between 1 and 65535' % (what, port))
    return port


def check_range(value, what, low, high):
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ValueError('%s %s is not a number: give a whole number from %d to %d' % (what, _describe(value), low, high))
    if not low <= number <= high:
        raise ValueError('%s %d is out of range: give a whole number from %d to %d' % (what, number, low, high))
    return number


def check_filter(value):
    """Return a BPF filter string that cannot act as a shell word or a tcpdump option.

    tcpdump gets the filter as argv elements after ``--`` (never through a shell); this check
    refuses what has no business in a BPF expression so that mistakes and injection attempts
    fail loudly before anything runs.
    """
    raw = text(value)
    if len(raw) > MAX_FILTER_LEN:
        raise ValueError('filter is %d characters long: keep it under %d' % (len(raw), MAX_FILTER_LEN))
    bad = sorted(set(ch for ch in FILTER_META if ch in raw))
    if bad:
        shown = ' '.join(repr(ch) for ch in bad)
        raise ValueError('filter %s contains %s: a BPF filter needs none of ; ` $ \\ quotes, '
                         'newlines or NUL; write it as plain tcpdump filter syntax, e.g. '
                         '"host 172.17.25.79 and tcp port 443"' % (_describe(value), shown))
    if OPTION_TOKEN_RE.search(raw):
        raise ValueError('filter %s contains a word starting with "-", which looks like a tcpdump option: '
                         'give only the filter expression, e.g. "host 172.17.25.79 and tcp port 443"' % _describe(value))
    if any(ord(ch) < 32 and ch != '\t' for ch in raw):
        raise ValueError('filter %s contains control characters: remove them' % _describe(value))
    return raw.strip()


def check_directory(value):
    """Return an absolute capture directory without dot-directories (AppArmor refuses them)."""
    raw = text(value)
    if not raw.startswith('/'):
        raise ValueError('directory %s is not absolute: give a path such as /var/tmp/hoptrace' % _describe(value))
    if any(ch in raw for ch in SHELL_META) or any(ord(ch) < 32 for ch in raw):
        raise ValueError('directory %s contains shell or control characters: use letters, digits, "_", "-", "." and "/"'
                         % _describe(value))
    parts = [p for p in raw.split('/') if p]
    if any(not PATH_PART_RE.fullmatch(p) or p.startswith('-') for p in parts):
        raise ValueError('directory %s has a component with spaces, unusual characters or a leading "-": use '
                         'letters, digits, "_", "-" and "." such as /var/tmp/hoptrace' % _describe(value))
    if any(p.startswith('.') for p in parts):
        raise ValueError('directory %s has a component starting with ".": tcpdump\'s AppArmor profile refuses '
                         'dot-directories, use a path such as /var/tmp/hoptrace' % _describe(value))
    if not parts:
        raise ValueError('directory "/" is not allowed: use a dedicated directory such as /var/tmp/hoptrace')
    return os.path.normpath(raw)
