# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# Private to hoptrace.k8s: iproute2 output parsing and derivation for route_info; not a public API.
"""Routes, links, addresses of a node, and what a trace needs from them.

Pure functions over the output of ``ip -j ...`` (and the text of ``ip ...`` for iproute2
builds without ``-j``), producing the ``route_info`` shapes of docs/internals.md:
``routes``, ``links``, ``addresses``, then ``workloads``, ``local_blocks``, ``remote_blocks``,
``peers`` and ``node_ips`` derived from them.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type  # noqa: UP001 - ansible-test boilerplate

import ipaddress
import re

from ansible_collections.hoptrace.k8s.plugins.module_utils._ip_route_text import parse_ip_route, parse_route_line

KINDS = ('veth', 'ipip', 'vxlan', 'wireguard', 'bridge', 'vlan', 'bond', 'tun', 'dummy')
TUNNEL_KINDS = ('ipip', 'vxlan', 'wireguard')
# link kinds iproute2 names in `ip -d link` text (first word of a detail line)
TEXT_KINDS = KINDS + ('gre', 'gretap', 'ip6gre', 'ip6gretap', 'ip6tnl', 'sit', 'macvlan', 'macvtap', 'ipvlan',
                      'geneve', 'vrf', 'team', 'nlmon', 'ifb', 'erspan', 'xfrm', 'vti', 'vti6', 'bareudp', 'netkit')
# device names of userspace WireGuard (a TUN device for the kernel): Calico's wireguard.cali, wg0
WIREGUARD_PREFIXES = ('wireguard', 'wg')
# routes a routing daemon or CNI installs towards other nodes' pod blocks
ROUTING_PROTOCOLS = ('bird', 'bgp', 'zebra', '80', 'calico')
# veth-like devices CNIs create for pods
WORKLOAD_PREFIXES = ('cali', 'veth', 'lxc', 'azv', 'eni', 'gke', 'vnet')


def _int(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


# ---------------------------------------------------------------------------- routes

def normalise_route(raw, family):
    """One ``ip -j route`` object in the shape of docs/internals.md (and of _ip_route_text)."""
    route = {
        'dst': raw.get('dst'),
        'gateway': raw.get('gateway'),
        'dev': raw.get('dev'),
        'protocol': str(raw['protocol']) if raw.get('protocol') is not None else 'boot',
        'scope': raw.get('scope') or 'global',
        'prefsrc': raw.get('prefsrc'),
        'metric': _int(raw.get('metric')),
        'type': raw.get('type') or 'unicast',
        'table': str(raw['table']) if raw.get('table') is not None else 'main',
        'flags': list(raw.get('flags') or []),
        'family': family,
        'nexthops': [],
    }
    for hop in raw.get('nexthops') or []:
        route['nexthops'].append({'gateway': hop.get('gateway'), 'dev': hop.get('dev'),
                                  'weight': _int(hop.get('weight')), 'flags': list(hop.get('flags') or [])})
    for extra in ('pref', 'expires', 'mtu'):
        if raw.get(extra) is not None:
            route[extra] = raw[extra]
    return route


def routes_from_json(data, family):
    return [normalise_route(r, family) for r in data or []]


def routes_from_text(text, family):
    return parse_ip_route(text or '', family=family)


def route_get_from_json(data):
    if not data:
        return None
    raw = data[0]
    return {'dst': raw.get('dst'), 'dev': raw.get('dev'), 'gateway': raw.get('gateway'),
            'prefsrc': raw.get('prefsrc'), 'type': raw.get('type') or 'unicast'}


def route_get_from_text(text):
    for line in (text or '').splitlines():
        if not line.strip() or line.startswith((' ', '\t')):
            continue
        route = parse_route_line(line.strip())
        if route:
            return {'dst': route.get('dst'), 'dev': route.get('dev'), 'gateway': route.get('gateway'),
                    'prefsrc': route.get('prefsrc'), 'type': route.get('type') or 'unicast'}
    return None


# ---------------------------------------------------------------------------- links

def link_kind(ifname, info_kind, link_type):
    """(kind, tun) for a link; a TUN named tunl* is the lab's userspace IPIP tunnel, one named
    wireguard*/wg* a userspace WireGuard device (wireguard-go, boringtun)."""
    if info_kind == 'tun' and (ifname or '').startswith('tunl'):
        return 'ipip', True
    if info_kind == 'tun' and (ifname or '').startswith(WIREGUARD_PREFIXES):
        return 'wireguard', True
    if info_kind in KINDS:
        return info_kind, False
    if link_type == 'loopback':
        return 'loopback', False
    if info_kind is None and link_type == 'ether':
        return 'physical', False
    if info_kind is None and link_type == 'ipip':
        return 'ipip', False
    return 'other', False


def _link(ifname, ifindex, info_kind, info_data, mtu, operstate, link_type, address, master):
    kind, tun = link_kind(ifname, info_kind, link_type)
    link = {'ifname': ifname, 'ifindex': ifindex, 'kind': kind, 'mtu': mtu, 'operstate': operstate,
            'link_type': link_type, 'address': address, 'master': master, 'vxlan': None, 'vlan_id': None}
    if tun:
        link['tun'] = True
    info_data = info_data or {}
    if info_kind == 'vxlan':
        link['vxlan'] = {'id': _int(info_data.get('id')), 'port': _int(info_data.get('port')),
                         'local': info_data.get('local') or info_data.get('local6'), 'dev': info_data.get('link')}
    elif info_kind == 'vlan':
        link['vlan_id'] = _int(info_data.get('id'))
    return link


def links_from_json(data):
    links = []
    for raw in data or []:
        info = raw.get('linkinfo') or {}
        address = raw.get('address') if raw.get('link_type') not in ('none', None) else None
        links.append(_link(raw.get('ifname'), raw.get('ifindex'), info.get('info_kind'), info.get('info_data'),
                           raw.get('mtu'), raw.get('operstate'), raw.get('link_type'), address, raw.get('master')))
    return links


_LINK_HEAD_RE = re.compile(r'^(\d+):\s+([^:@\s]+)(?:@(\S+))?:\s+<([^>]*)>\s*(.*)$')


def _words_after(words, key):
    if key in words:
        index = words.index(key)
        if index + 1 < len(words):
            return words[index + 1]
    return None


def _link_blocks(text):
    """Split ``ip link``/``ip addr`` text into (head match, [detail lines]) per interface."""
    blocks = []
    for line in (text or '').splitlines():
        head = _LINK_HEAD_RE.match(line)
        if head:
            blocks.append((head, []))
        elif blocks and line.strip():
            blocks[-1][1].append(line.strip())
    return blocks


def _parse_vxlan_words(words):
    data = {'id': _words_after(words, 'id'), 'port': _words_after(words, 'dstport'),
            'local': _words_after(words, 'local') or _words_after(words, 'local6'), 'link': _words_after(words, 'dev')}
    return data


def links_from_text(text):
    """``ip -d link show`` text to the link shape."""
    links = []
    for head, details in _link_blocks(text):
        rest = head.group(5).split()
        link_type = address = None
        info_kind = None
        info_data = {}
        for line in details:
            words = line.split()
            if words[0].startswith('link/'):
                link_type = words[0][5:]
                if len(words) > 1 and link_type not in ('none',) and words[1] not in ('promiscuity', 'brd'):
                    address = words[1]
            elif info_kind is None and words[0] in TEXT_KINDS:
                info_kind = words[0]
                if info_kind == 'vxlan':
                    info_data = _parse_vxlan_words(words)
                elif info_kind == 'vlan':
                    info_data = {'id': _words_after(words, 'id')}
        links.append(_link(head.group(2), int(head.group(1)), info_kind, info_data, _int(_words_after(rest, 'mtu')),
                           _words_after(rest, 'state'), link_type, address, _words_after(rest, 'master')))
    return links


# ---------------------------------------------------------------------------- addresses

def addresses_from_json(data):
    addresses = []
    for raw in data or []:
        for info in raw.get('addr_info') or []:
            addresses.append({'ifname': raw.get('ifname'), 'family': info.get('family'), 'local': info.get('local'),
                              'prefixlen': _int(info.get('prefixlen')), 'scope': info.get('scope') or 'global'})
    return addresses


def addresses_from_text(text):
    """``ip addr show`` text to the address shape."""
    addresses = []
    for head, details in _link_blocks(text):
        for line in details:
            words = line.split()
            if words[0] not in ('inet', 'inet6') or len(words) < 2:
                continue
            local, _sep, prefix = words[1].partition('/')
            peer = _words_after(words, 'peer')
            if not prefix and peer and '/' in peer:
                prefix = peer.partition('/')[2]
            if not prefix:
                prefix = '32' if words[0] == 'inet' else '128'
            addresses.append({'ifname': head.group(2), 'family': words[0], 'local': local, 'prefixlen': int(prefix),
                              'scope': _words_after(words, 'scope') or 'global'})
    return addresses


# ---------------------------------------------------------------------------- neighbours, fdb

def neigh_from_json(data):
    return dict((n['dst'], n.get('lladdr')) for n in data or [] if n.get('dst'))


def neigh_from_text(text):
    table = {}
    for line in (text or '').splitlines():
        words = line.split()
        if words and 'lladdr' in words:
            table[words[0]] = _words_after(words, 'lladdr')
    return table


def fdb_from_json(data):
    table = {}
    for entry in data or []:
        if entry.get('mac') and entry.get('dst'):
            table.setdefault(entry['mac'].lower(), entry['dst'])
    return table


def fdb_from_text(text):
    table = {}
    for line in (text or '').splitlines():
        words = line.split()
        if words and 'dst' in words:
            table.setdefault(words[0].lower(), _words_after(words, 'dst'))
    return table


def bridge_ports_from_json(data, bridge):
    """``{mac: port}`` of a bridge's forwarding database (``bridge -j fdb show br BRIDGE``):
    which of its ports (a pod's veth) a MAC was learned on. The bridge's own entries are left out."""
    table = {}
    for entry in data or []:
        mac, port = (entry.get('mac') or '').lower(), entry.get('ifname') or entry.get('dev')
        if not mac or not port or port == bridge or entry.get('master') not in (None, bridge):
            continue
        if 'self' in (entry.get('flags') or []):
            continue  # the port device's own table (multicast, its own MAC), not what the bridge learned
        if entry.get('state') == 'permanent' and mac in table:
            continue  # a learned entry wins over the port's own address
        table.setdefault(mac, port)
    return table


def bridge_ports_from_text(text, bridge):
    """``{mac: port}`` from ``bridge fdb show br BRIDGE`` text (``9a:fa:.. dev vethX master cni0``)."""
    data = []
    for line in (text or '').splitlines():
        words = line.split()
        if len(words) > 2 and 'dev' in words:
            data.append({'mac': words[0], 'ifname': _words_after(words, 'dev'), 'master': _words_after(words, 'master'),
                         'state': 'permanent' if 'permanent' in words else '', 'flags': ['self'] if 'self' in words else []})
    return bridge_ports_from_json(data, bridge)


# ---------------------------------------------------------------------------- derivation

def _is_host_route(dst, family):
    if not dst or dst == 'default':
        return False
    if '/' not in dst:
        return True
    return dst.endswith('/32') if family == 'inet' else dst.endswith('/128')


def _host(dst):
    return dst.split('/')[0]


def _main_unicast(route):
    return route['table'] == 'main' and route['type'] == 'unicast'


def workload_links(links):
    """Names of links that can carry pods: veths, and anything named like a CNI pod veth."""
    return set(k['ifname'] for k in links if k['kind'] == 'veth' or (k['ifname'] or '').startswith(WORKLOAD_PREFIXES))


def workloads(routes, links):
    """Pod IPs on this node: host routes scope link (IPv6: no gateway) on a workload veth."""
    veths = workload_links(links)
    found = []
    for r in routes:
        if not _main_unicast(r) or r['dev'] not in veths or r['gateway'] or not _is_host_route(r['dst'], r['family']):
            continue
        if r['family'] == 'inet' and r['scope'] != 'link':
            continue
        found.append({'ip': _host(r['dst']), 'dev': r['dev']})
    return found


def pod_bridges(routes, links):
    """Bridges that hold pods (Flannel's and the CNI bridge plugin's ``cni0``): a bridge with veth
    ports and a connected subnet. ``[{dev, subnets, address}]``; the node knows its pods behind
    it only from its neighbour table and the bridge's fdb (:func:`bridge_workloads`). A dual-stack
    bridge's IPv6 subnet counts, its link-local ``fe80::/64`` does not (pods' link-local addresses
    are no pod IPs)."""
    veths = workload_links(links)
    found = []
    for link in links:
        if link['kind'] != 'bridge':
            continue
        ports = [k['ifname'] for k in links if k.get('master') == link['ifname'] and k['ifname'] in veths]
        subnets = [r['dst'] for r in routes if _main_unicast(r) and r['dev'] == link['ifname'] and not r['gateway']
                   and r['protocol'] == 'kernel' and r['dst'] != 'default' and not _is_host_route(r['dst'], r['family'])
                   and not is_link_local(r['dst'].split('/')[0])]
        if ports and subnets:
            found.append({'dev': link['ifname'], 'subnets': subnets, 'ports': ports})
    return found


def _in_subnets(ip, subnets):
    try:
        address = ipaddress.ip_address(u'%s' % ip)
    except ValueError:
        return False
    for net in subnets:
        try:
            if address in ipaddress.ip_network(u'%s' % net, strict=False):
                return True
        except ValueError:
            continue
    return False


def bridge_workloads(bridges, neigh_by_dev, ports_by_dev, own=()):
    """Pods behind pod bridges: each neighbour (pod IP -> MAC) in the bridge's subnets whose MAC the
    bridge learned on a port. ``dev`` is that port (the pod's veth); without an fdb entry it is the
    bridge itself and ``port`` is None (the trace then captures on the bridge and says so)."""
    found = []
    for bridge in bridges:
        dev = bridge['dev']
        ports = ports_by_dev.get(dev) or {}
        for ip, mac in sorted((neigh_by_dev.get(dev) or {}).items()):
            if ip in own or not mac or not _in_subnets(ip, bridge['subnets']):
                continue
            port = ports.get(mac.lower())
            found.append({'ip': ip, 'dev': port or dev, 'bridge': dev, 'mac': mac.lower(), 'port': port})
    return found


def local_blocks(routes):
    return [r['dst'] for r in routes if r['type'] == 'blackhole' and r['table'] == 'main' and r['dst'] != 'default']


def _encap(link):
    if not link:
        return 'none'
    return link['kind'] if link['kind'] in TUNNEL_KINDS else 'none'


def remote_blocks(routes, links, resolve=None, wg_resolve=None):
    """Routes to other nodes' pod blocks: via a tunnel device, or via a gateway set by a routing daemon.

    ``resolve(via, link)`` maps a VXLAN gateway (peer tunnel address) to the peer's underlay address;
    ``wg_resolve(block, link)`` a block on a WireGuard device to its peer's endpoint address.
    """
    by_name = dict((link['ifname'], link) for link in links)
    veths = workload_links(links)
    blocks = []
    for r in routes:
        # Calico's WireGuard routes live in their own table; every other kind in main
        on_wireguard = (by_name.get(r['dev']) or {}).get('kind') == 'wireguard'
        if r['type'] != 'unicast' or r['dst'] == 'default' or not (r['table'] == 'main' or on_wireguard):
            continue
        hops = r['nexthops'] or [{'gateway': r['gateway'], 'dev': r['dev']}]
        for hop in hops:
            link = by_name.get(hop['dev'])
            encap = _encap(link)
            if hop['dev'] in veths and not hop['gateway']:
                continue
            if encap == 'none' and not (hop['gateway'] and r['protocol'] in ROUTING_PROTOCOLS):
                continue
            if r['protocol'] == 'kernel' or (encap in ('ipip', 'vxlan') and not hop['gateway']):
                continue  # connected/link-local routes; IPIP and VXLAN blocks always have a next hop
            if encap == 'wireguard' and _is_host_route(r['dst'], r['family']):
                continue
            node_ip = hop['gateway']
            if encap == 'vxlan' or is_link_local(hop['gateway']):
                # a link-local next hop (IPv6 BGP) is no node address: the neighbour table names it
                node_ip = resolve(hop['gateway'], link or {'ifname': hop['dev'], 'kind': None}) \
                    if (resolve and hop['gateway']) else None
            elif encap == 'wireguard':
                node_ip = wg_resolve(r['dst'], link) if wg_resolve else None
            blocks.append({'dst': r['dst'], 'via': hop['gateway'], 'dev': hop['dev'], 'encap': encap,
                           'protocol': r['protocol'], 'node_ip': node_ip})
    return blocks


def is_link_local(address):
    """True for an IPv6 link-local address (fe80::/10), the next hop of IPv6 BGP routes."""
    try:
        ip = ipaddress.ip_address(address or '')
    except ValueError:
        return False
    return ip.version == 6 and ip.is_link_local


def eui64_mac(address):
    """The MAC an EUI-64 link-local address was made from (``fe80::68:74ff:fe06:1`` ->
    ``02:68:74:06:00:01``), or None when the address is not EUI-64 (stable-privacy, manual)."""
    try:
        raw = ipaddress.IPv6Address(address).packed
    except ValueError:
        return None
    if raw[11:13] != b'\xff\xfe':
        return None
    mac = [raw[8] ^ 0x02, raw[9], raw[10], raw[13], raw[14], raw[15]]
    return ':'.join('%02x' % b for b in mac)


def link_local_devs(routes):
    """Devices of routes whose next hop is an IPv6 link-local address: their neighbour tables
    map each such next hop to the peer's global address."""
    devs = []
    for r in routes:
        for hop in r['nexthops'] or [{'gateway': r['gateway'], 'dev': r['dev']}]:
            if hop['dev'] and is_link_local(hop['gateway']) and hop['dev'] not in devs:
                devs.append(hop['dev'])
    return devs


def same_link_address(neigh, via):
    """The peer's global address behind a link-local next hop: the neighbour entry of ``via``
    (or, not resolved yet, the MAC its EUI-64 form carries) and the other entries of that MAC on
    the same link - an IPv6 global one first, else an IPv4 one; None when none shares the MAC."""
    mac = (neigh.get(via) or eui64_mac(via) or '').lower()
    if not mac:
        return None
    found = [ip for ip, lladdr in sorted(neigh.items()) if (lladdr or '').lower() == mac and not is_link_local(ip)]
    found.sort(key=lambda ip: 0 if ':' in ip else 1)
    return found[0] if found else None


def same_link_devs(peers):
    """Underlay devices of the IPv6 peers: their neighbour tables tie each peer's IPv6 address to
    its other addresses (same MAC)."""
    devs = []
    for p in peers:
        if ':' in (p.get('node_ip') or '') and p.get('dev') and p['dev'] not in devs:
            devs.append(p['dev'])
    return devs


def add_same_link(peers, neigh_by_dev):
    """Give each IPv6 peer ``same_link``: the other global addresses its MAC has in the neighbour
    table of its device (its IPv4 address, usually: what an inventory names), IPv4 first."""
    for p in peers:
        if ':' not in (p.get('node_ip') or ''):
            continue
        table = neigh_by_dev.get(p.get('dev')) or {}
        mac = (table.get(p['node_ip']) or '').lower()
        found = [ip for ip, lladdr in sorted(table.items())
                 if mac and (lladdr or '').lower() == mac and ip != p['node_ip'] and not is_link_local(ip)]
        p['same_link'] = sorted(found, key=lambda ip: 1 if ':' in ip else 0)
    return peers


def vxlan_resolver(neigh_by_dev, fdb_by_dev):
    """Function mapping (peer tunnel IP, vxlan link) to the peer's underlay IP via neighbour + fdb,
    and (link-local next hop, link) to the peer's global address via the neighbour table."""
    def resolve(via, link):
        if link.get('kind') != 'vxlan':
            return same_link_address(neigh_by_dev.get(link['ifname']) or {}, via) if is_link_local(via) else None
        mac = (neigh_by_dev.get(link['ifname']) or {}).get(via)
        if not mac:
            return None
        return (fdb_by_dev.get(link['ifname']) or {}).get(mac.lower())
    return resolve


def peer_targets(blocks):
    """Unique (node_ip, encap, via, dev) of remote blocks whose peer underlay address is known."""
    seen = []
    for b in blocks:
        key = (b['node_ip'], b['encap'], b['via'], b['dev'])
        if b['node_ip'] and key not in seen:
            seen.append(key)
    return seen


def peers(blocks, links, route_gets):
    """Underlay device and source address towards each peer node (``route_gets``: node_ip -> route get)."""
    by_name = dict((link['ifname'], link) for link in links)
    result = []
    done = set()
    for node_ip, encap, via, dev in peer_targets(blocks):
        if (node_ip, encap) in done:
            continue
        done.add((node_ip, encap))
        got = route_gets.get(node_ip) or {}
        out_dev, src = got.get('dev'), got.get('prefsrc')
        link = by_name.get(dev) or {}
        if encap == 'vxlan' and link.get('vxlan'):
            out_dev = link['vxlan'].get('dev') or out_dev
            src = src or link['vxlan'].get('local')
        result.append({'node_ip': node_ip, 'dev': out_dev, 'src': src, 'encap': encap, 'via': via})
    return result


def node_ips(addresses, links, workload_devs):
    """Global addresses not on workload, tunnel, pod bridge or loopback links: the node's own addresses."""
    by_name = dict((link['ifname'], link) for link in links)
    skip_kinds = TUNNEL_KINDS + ('loopback', 'tun')
    found = []
    for a in addresses:
        link = by_name.get(a['ifname']) or {}
        if a['scope'] != 'global' or a['ifname'] in workload_devs or link.get('kind') in skip_kinds:
            continue
        if (a['ifname'] or '').startswith('cali'):
            continue
        try:
            if ipaddress.ip_address(a['local']).is_link_local:
                continue
        except ValueError:
            continue
        if a['local'] not in found:
            found.append(a['local'])
    return found


def wireguard_resolver(devices, peer_for):
    """Function mapping (block, wireguard link) to the endpoint IP of the peer whose AllowedIPs
    hold the block (``devices``: _wireguard.parse_dump's result, ``peer_for``: its lookup)."""
    def resolve(block, link):
        peer = peer_for(devices.get(link['ifname']), block)
        return peer.get('endpoint_ip') if peer else None
    return resolve


def derive(routes, links, addresses, neigh_by_dev=None, fdb_by_dev=None, ports_by_dev=None, wg_resolve=None):
    """Everything except ``peers`` (which needs ``ip route get`` per peer): returns a dict.

    ``neigh_by_dev`` holds the neighbour tables of vxlan links and pod bridges, ``fdb_by_dev`` the
    vxlan fdb (MAC -> underlay IP), ``ports_by_dev`` the pod bridges' fdb (MAC -> port),
    ``wg_resolve`` maps a block on a WireGuard link to its peer's endpoint (wireguard_resolver)."""
    loads = workloads(routes, links)
    bridges = pod_bridges(routes, links)
    own = set(a['local'] for a in addresses)
    loads += [w for w in bridge_workloads(bridges, neigh_by_dev or {}, ports_by_dev or {}, own)
              if w['ip'] not in set(x['ip'] for x in loads)]
    blocks = remote_blocks(routes, links, vxlan_resolver(neigh_by_dev or {}, fdb_by_dev or {}), wg_resolve)
    devs = set(w['dev'] for w in loads) | set(b['dev'] for b in bridges)
    return {'workloads': loads, 'local_blocks': local_blocks(routes), 'remote_blocks': blocks,
            'pod_bridges': bridges, 'node_ips': node_ips(addresses, links, devs)}
