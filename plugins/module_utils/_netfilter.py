# -*- coding: utf-8 -*-
# Copyright (c) hoptrace developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Private: netfilter rule counters from ``iptables-save -c`` and ``nft -j list ruleset`` (node side, stdlib only).

``parse_save(text, source)`` reads one ``iptables-save -c`` (or ``ip6tables-save -c``) output into
``{key: [packets, bytes]}`` for every rule and built-in chain policy; the key names the source
(``iptables-nft``, ``ip6tables-legacy``, ...), the table, the chain, a CRC of the rule text and its
occurrence, so that a rule matches itself across two snapshots even when rules were inserted
before it. ``rule_info(key, text)`` turns a key of the second snapshot back into what a person
reads (table, chain, rule number, rule text, target). nft's own tables (not iptables-nft's) are
read from ``nft -j list ruleset`` the same way: ``parse_nft(json_text)``.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type  # noqa: UP001

import json
import re
import zlib

_RULE = re.compile(r'^\[(\d+):(\d+)\] -A (\S+) (.*)$')
_POLICY = re.compile(r'^:(\S+) (\S+) \[(\d+):(\d+)\]$')
_TARGET = re.compile(r'(?:^| )-([jg]) (\S+)')
# the tables iptables-nft keeps in nftables; any other table is nft's own
IPTABLES_NFT_TABLES = frozenset(['filter', 'nat', 'mangle', 'raw', 'security', 'broute'])
TERMINAL = frozenset(['DROP', 'REJECT'])


def _key(source, table, chain, text, occurrence):
    return '%s|%s|%s|%08x|%d' % (source, table, chain, zlib.crc32(text.encode('utf-8')) & 0xffffffff, occurrence)


def parse_save(text, source, every=False):
    """``(counters, rules)`` of one iptables-save -c output: its rules that drop or reject (``every``: all
    of them) and its built-in chains' policies.

    Every rule is numbered in its chain, but only the kept ones are parsed further: a kube-proxy node's
    tens of thousands of rules cost a substring test each.

    ``counters``: ``{key: [packets, bytes]}``; a built-in chain's policy has the key
    ``<source>|<table>|<chain>|policy|0``. ``rules``: ``{key: (chain, number, text, target, is_policy)}``,
    what ``rule_info`` needs to name a rule (the rule text as iptables-save prints it, with ``-A``).
    """
    counters, rules = {}, {}
    table = None
    numbers, seen = {}, {}
    for line in text.splitlines():
        if not line or line[0] == '#':
            continue
        if line[0] == '*':
            table, numbers, seen = line[1:].strip(), {}, {}
            continue
        if table is None:
            continue
        if line[0] == '[':
            parts = line.split(' ', 3)
            if len(parts) < 4 or parts[1] != '-A':
                continue
            chain = parts[2]
            numbers[chain] = numbers.get(chain, 0) + 1
            if not every and ' -j DROP' not in line and ' -j REJECT' not in line:
                continue
            m = _RULE.match(line)
            if not m:
                continue
            rest = m.group(4)
            occ = seen.get((chain, rest), 0)
            seen[(chain, rest)] = occ + 1
            key = _key(source, table, chain, rest, occ)
            counters[key] = [int(m.group(1)), int(m.group(2))]
            rules[key] = (chain, numbers[chain], '-A %s %s' % (chain, rest), target_of(rest), False)
        elif line[0] == ':':
            m = _POLICY.match(line)
            if m and m.group(2) != '-':
                key = '%s|%s|%s|policy|0' % (source, table, m.group(1))
                counters[key] = [int(m.group(3)), int(m.group(4))]
                rules[key] = (m.group(1), 0, 'policy %s' % m.group(2), m.group(2), True)
    return counters, rules


def target_of(text):
    """The target of a rule text (``DROP``, ``REJECT``, a chain, ...), or '' (no -j/-g: a counting rule)."""
    found = _TARGET.findall(text)
    return found[-1][1] if found else ''


def rule_info(key, rules):
    """What a person reads of one rule: ``{source, table, chain, number, rule, target}``."""
    source, table = key.split('|')[:2]
    chain, number, text, target, policy = rules[key]
    return {'source': source, 'table': table, 'chain': chain, 'number': number, 'rule': text, 'target': target,
            'policy': policy}


def other_nft_tables(text):
    """The nft tables (``family name``) in ``nft list tables`` output that are not iptables-nft's."""
    out = []
    for line in text.splitlines():
        words = line.split()
        if len(words) == 3 and words[0] == 'table':
            family, name = words[1], words[2]
            if family in ('ip', 'ip6') and name in IPTABLES_NFT_TABLES:
                continue
            if family == 'bridge' and name in IPTABLES_NFT_TABLES:
                continue
            out.append('%s %s' % (family, name))
    return out


def _verdict(exprs):
    for e in exprs:
        if not isinstance(e, dict):
            continue
        for name in ('drop', 'reject', 'accept', 'jump', 'goto', 'return'):
            if name in e:
                value = e[name]
                if name in ('jump', 'goto') and isinstance(value, dict):
                    return '%s %s' % (name, value.get('target', ''))
                return name
    return ''


def parse_nft(text, tables):
    """``(counters, rules)`` as parse_save, for the rules with a ``counter`` in the nft tables ``tables``
    (``["inet filter", ...]``) of ``nft -j list ruleset``; a rule is named by its handle and comment."""
    counters, rules = {}, {}
    wanted = set(tables)
    try:
        doc = json.loads(text)
    except ValueError:
        return counters, rules
    numbers = {}
    for item in doc.get('nftables') or []:
        rule = item.get('rule') if isinstance(item, dict) else None
        if not rule:
            continue
        table = '%s %s' % (rule.get('family'), rule.get('table'))
        if table not in wanted:
            continue
        chain = rule.get('chain')
        numbers[(table, chain)] = numbers.get((table, chain), 0) + 1
        exprs = rule.get('expr') or []
        counter = next((e['counter'] for e in exprs if isinstance(e, dict) and isinstance(e.get('counter'), dict)), None)
        if counter is None:
            continue
        verdict = _verdict(exprs)
        text_ = 'handle %s%s%s' % (rule.get('handle'), (' comment "%s"' % rule['comment']) if rule.get('comment') else '',
                                   (' %s' % verdict) if verdict else '')
        key = 'nft|%s|%s|%s|0' % (table, chain, rule.get('handle'))
        counters[key] = [int(counter.get('packets') or 0), int(counter.get('bytes') or 0)]
        rules[key] = (chain, numbers[(table, chain)], text_, {'drop': 'DROP', 'reject': 'REJECT'}.get(verdict, verdict), False)
    return counters, rules
