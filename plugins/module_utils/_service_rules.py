# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Private: kube-proxy's rules read on a node for a Service address (node side, stdlib only).

``needs_rules(result, address)`` says whether ``address`` is not a pod address of the node's
routes (a workload, a local or remote pod block), so that only a trace to a Service pays for the
read; ``sources(address)`` names what to read for the address's family (kube-proxy keeps one ruleset
per family: ``iptables-save`` and ``table ip kube-proxy`` for IPv4, ``ip6tables-save`` and ``table ip6
kube-proxy`` for IPv6); ``trim(text)`` keeps of one ``iptables-save`` output only what names Services: the table
headers, kube-proxy's ``KUBE-*`` chains and the jumps into them. The controller parses the rest
(plugins/plugin_utils/kubeproxy.py).

Every read is bounded (READ_SECONDS each, ``_bounded``). What could not be read becomes one of route_info's
``notes``, worded by ``none_installed_note``, ``killed_note`` and ``no_ipvsadm_note``; they all start with
NOTE_START, which is how the controller (``plugin_utils/hosting.py``) finds them for the report's notes.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type  # noqa: UP001 - ansible-test boilerplate

import ipaddress

# iptables-save binaries, the alternatives' choice first; kube-proxy may use either backend
SAVE_TOOLS = ('iptables-save', 'iptables-nft-save', 'iptables-legacy-save')
# the same for kube-proxy's IPv6 ruleset (its IPv6 proxier writes with ip6tables-restore)
SAVE6_TOOLS = ('ip6tables-save', 'ip6tables-nft-save', 'ip6tables-legacy-save')
# the dummy device kube-proxy's IPVS mode puts the Service addresses on
IPVS_DEVICE = 'kube-ipvs0'
# the table of kube-proxy's nftables mode (family ip for IPv4, ip6 for IPv6: one table per family)
NFT_TABLE = 'kube-proxy'
# seconds for each read (iptables-save, nft, ipvsadm), as a whole counter snapshot (_counters.TIMEOUT)
READ_SECONDS = 2.0
# how every note about kube-proxy's rules begins
NOTE_START = "kube-proxy's "
PLAIN = 'a Service address is traced as a plain address'


def _net(text):
    try:
        return ipaddress.ip_network(u'%s' % text, strict=False)
    except ValueError:
        return None


def needs_rules(result, address):
    """True when ``address`` is not a pod of this node's routes (workloads, local/remote blocks)."""
    try:
        target = ipaddress.ip_address(u'%s' % address)
    except ValueError:
        return False
    for workload in result.get('workloads') or []:
        if workload.get('ip') == str(target):
            return False
    blocks = list(result.get('local_blocks') or []) + [b.get('dst') for b in result.get('remote_blocks') or []]
    for block in blocks:
        net = _net(block)
        if net is not None and net.version == target.version and target in net:
            return False
    return True


def sources(address):
    """``(iptables-save binaries, nft family)`` that hold kube-proxy's rules for ``address``'s family."""
    try:
        version = ipaddress.ip_address(u'%s' % address).version
    except ValueError:
        version = 4
    return (SAVE6_TOOLS, 'ip6') if version == 6 else (SAVE_TOOLS, 'ip')


def trim(text):
    """The lines of an iptables-save output that kube-proxy wrote or that jump into its chains."""
    kept = []
    for line in (text or '').splitlines():
        bare = line.split('] ', 1)[1] if line.startswith('[') and '] ' in line else line
        if bare.startswith(('*', 'COMMIT', ':KUBE-', '-A KUBE-')) or (bare.startswith('-A ') and ' -j KUBE-' in bare):
            kept.append(bare)
    return '\n'.join(kept) + ('\n' if kept else '')


def has_services(text):
    return ':KUBE-SERVICES ' in (text or '')


def none_installed_note(node, tools):
    """No iptables-save of the family and no nft on ``node``: nothing could be read."""
    return "kube-proxy's rules were not read on %s: none of %s is installed; %s" % (node, ', '.join(tuple(tools) + ('nft',)), PLAIN)


def killed_note(node, killed, found):
    """Reads that did not answer in time (``killed``, their words), and what was read all the same."""
    if found is None:
        return "kube-proxy's rules were not read on %s: %s; %s" % (node, '; '.join(killed), PLAIN)
    return "kube-proxy's rules on %s were read with %s, but %s" % (node, found['source'], '; '.join(killed))


def no_ipvsadm_note(node):
    """kube-proxy's IPVS device without the tool that lists its virtual servers."""
    return ("kube-proxy's IPVS rules were not read on %s: it has %s but ipvsadm is not installed; "
            "a Service address IPVS translates is traced as a plain address" % (node, IPVS_DEVICE))


def is_note(text):
    """True for a route_info note about kube-proxy's rules (the ones above)."""
    return isinstance(text, str) and text.startswith(NOTE_START)
