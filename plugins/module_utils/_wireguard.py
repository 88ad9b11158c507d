# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# Private to hoptrace.k8s: `wg show all dump` parsing for route_info; not a public API.
"""WireGuard devices and peers from ``wg show all dump`` (wireguard-tools).

The dump is tab separated, one line per device and one per peer, each prefixed with the device
name when ``all`` is asked for:

    DEV  private-key  public-key  listen-port  fwmark
    DEV  public-key  preshared-key  endpoint  allowed-ips  latest-handshake  transfer-rx  transfer-tx  persistent-keepalive

The private and preshared keys are never kept: a device is described by its public key's
short id, and a peer by its own.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type  # noqa: UP001 - ansible-test boilerplate

import ipaddress

KEY_ID_LEN = 8


def key_id(key):
    """Short id of a base64 public key (its first characters), None for ``(none)``."""
    if not key or key == '(none)':
        return None
    return key[:KEY_ID_LEN]


def _int(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _fwmark(value):
    if value in (None, '', 'off', '0'):
        return None
    try:
        return int(value, 16) if value.lower().startswith('0x') else int(value)
    except ValueError:
        return None


def split_endpoint(endpoint):
    """(ip, port) of ``10.240.0.9:51820`` or ``[fd00::1]:51820``; (None, None) for ``(none)``."""
    if not endpoint or endpoint == '(none)':
        return None, None
    host, sep, port = endpoint.rpartition(':')
    if not sep:
        return None, None
    host = host.strip('[]')
    if '%' in host:
        host = host.split('%', 1)[0]
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return None, _int(port)
    return host, _int(port)


def _allowed(value):
    if not value or value == '(none)':
        return []
    return [part.strip() for part in value.split(',') if part.strip()]


def parse_dump(text, device=None):
    """``{dev: {public_key_id, listen_port, fwmark, peers: [...]}}`` from ``wg show all dump``.

    With ``device`` the text is ``wg show DEVICE dump`` (no device column). Each peer is
    ``{public_key_id, endpoint, endpoint_ip, endpoint_port, allowed_ips, latest_handshake,
    transfer_rx, transfer_tx, persistent_keepalive}``; ``latest_handshake`` is a Unix time,
    0 when there was none. Lines of another shape are skipped.
    """
    devices = {}
    for line in (text or '').splitlines():
        fields = line.rstrip('\n').split('\t')
        if device is not None:
            fields = [device] + fields
        if len(fields) == 5:
            dev = fields[0]
            devices[dev] = {'public_key_id': key_id(fields[2]), 'listen_port': _int(fields[3]),
                            'fwmark': _fwmark(fields[4]), 'peers': []}
        elif len(fields) == 9:
            dev = fields[0]
            entry = devices.setdefault(dev, {'public_key_id': None, 'listen_port': None, 'fwmark': None, 'peers': []})
            ip, port = split_endpoint(fields[3])
            keepalive = _int(fields[8])
            entry['peers'].append({
                'public_key_id': key_id(fields[1]),
                'endpoint': None if fields[3] == '(none)' else fields[3],
                'endpoint_ip': ip, 'endpoint_port': port,
                'allowed_ips': _allowed(fields[4]),
                'latest_handshake': _int(fields[5]) or 0,
                'transfer_rx': _int(fields[6]) or 0, 'transfer_tx': _int(fields[7]) or 0,
                'persistent_keepalive': keepalive if keepalive else None,
            })
    return devices


def peer_for(device, address):
    """The peer of a parsed device whose AllowedIPs hold ``address`` (longest prefix), or None."""
    try:
        target = ipaddress.ip_address(address.split('/')[0])
        wanted = ipaddress.ip_network(address, strict=False) if '/' in address else None
    except ValueError:
        return None
    best, best_len = None, -1
    for peer in (device or {}).get('peers') or []:
        for allowed in peer.get('allowed_ips') or []:
            try:
                net = ipaddress.ip_network(allowed, strict=False)
            except ValueError:
                continue
            if net.version != target.version:
                continue
            inside = wanted.subnet_of(net) if wanted is not None and wanted.version == net.version else target in net
            if inside and net.prefixlen > best_len:
                best, best_len = peer, net.prefixlen
    return best
