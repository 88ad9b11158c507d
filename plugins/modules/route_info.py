#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# ruff: noqa: E402 - ansible-test wants the imports below DOCUMENTATION/EXAMPLES/RETURN

from __future__ import absolute_import, division, print_function
__metaclass__ = type  # noqa: UP001 - ansible-test boilerplate

DOCUMENTATION = r'''
---
module: route_info
short_description: Routes, links and addresses of a node, and the pod routes a trace needs
version_added: 0.1.0
description:
  - Reads the routes of every table (IPv4 and IPv6), the links with their kind, the addresses and
    MTUs of the node's network namespace with C(ip -j route show table all), C(ip -j -d link)
    and C(ip -j addr); falls back to parsing the text of C(ip route), C(ip -d link) and C(ip addr)
    when iproute2 has no C(-j).
  - Derives the local pods (host routes on workload veths such as C(cali*)), the local and remote
    pod blocks, the tunnel each remote block goes through (IPIP, VXLAN, WireGuard or none) and the
    underlay device and source address towards each peer node.
  - For VXLAN (Calico's C(vxlan.calico), Flannel's C(flannel.1)) the peer's tunnel address is mapped
    to its underlay address through the neighbour table (C(ip neigh show dev vxlan.calico)) and the
    forwarding database (C(bridge fdb show)), for Calico's C(vxlan-v6.calico) (IPv6 underlay) too.
  - Pods behind a bridge (Flannel's and the CNI bridge plugin's C(cni0), whose ports are the pods'
    veths) have no route of their own; they are read from the bridge's neighbour table
    (C(ip neigh show dev cni0), pod IP to MAC) and forwarding database (C(bridge fdb show br cni0),
    MAC to the port, the pod's veth).
  - IPv6 BGP routes go via the peer's link-local address (C(via fe80::... dev eth0 proto bird)); the
    neighbour table of that device (C(ip neigh show dev eth0)) maps it to the peer's MAC and so to
    the peer's global address on the same link (IPv6 first, else IPv4). That table is read only
    when such routes exist.
  - A TUN device named C(tunl*) (a userspace IPIP tunnel) is reported as kind C(ipip) with C(tun=true),
    one named C(wireguard*) or C(wg*) (wireguard-go) as kind C(wireguard) with C(tun=true).
  - For WireGuard devices (Calico's C(wireguard.cali), and C(wg-v6.cali) for IPv6) the same call
    reads C(wg show all dump); each device's listen port, fwmark and peers (public key short id,
    endpoint, allowed IPs, latest handshake, transfer counters) go into its RV(links) entry, and a
    pod block on the device is mapped to the endpoint of the peer whose allowed IPs hold it
    (RV(remote_blocks), RV(peers)).
    Private and preshared keys are never returned.
  - Changes nothing.
author:
  - hoptrace developers (@hoptrace)
options:
  ip:
    description:
      - Also return the kernel's route decision for this address (C(ip route get)) as RV(route_get).
    type: str
  prebuild:
    description:
      - Names (FQCN) of modules that later tasks of the play will run. While this module runs on the
        node, the action plugin builds their payloads on the controller, where Ansible keeps them for
        the rest of the run, so that those tasks do not spend the build (about 0.2 s each) before
        they connect.
      - Controller side only; nothing changes on the node. A module that cannot be built here is
        built by its task as usual.
    type: list
    elements: str
    default: []
    version_added: 0.2.0
  connect_ahead:
    description:
      - Controller side only, used by the trace role's path step. C(flow) (the validated flow) and
        C(hosts) (the hosts that may hold the pods). Once the node has answered, the action plugin
        finds the path nodes from this result (as the C(hoptrace.k8s.trace_path) filter does) and
        opens the ssh connections to the other path nodes in the background (C(ssh ... true) with
        Ansible's own ControlMaster command line for each host), so that the next task that
        contacts them finds the connection open.
      - Best effort; hosts with another connection plugin, a password, or no ControlPersist are
        left alone. Nothing runs on those nodes but C(true).
    type: dict
    version_added: 0.2.0
  services_for:
    description:
      - An address the trace goes to. When it is not a pod address of this node's routes (no workload,
        local or remote pod block holds it), kube-proxy's rules are read too (C(iptables-save), else
        C(iptables-nft-save) or C(iptables-legacy-save)) and returned as RV(service_rules), so that the
        controller finds the Service behind it. A pod address costs nothing more.
      - kube-proxy keeps one ruleset per IP family. For an IPv6 address the IPv6 one is read instead
        (C(ip6tables-save), else C(ip6tables-nft-save) or C(ip6tables-legacy-save)); an IPv4 address reads
        only the IPv4 tools.
      - On a node with kube-proxy's IPVS device C(kube-ipvs0), C(ipvsadm -Ln) is read too; without
        kube-proxy's iptables chains, C(nft list table ip kube-proxy) (its nftables mode), C(nft list table
        ip6 kube-proxy) for an IPv6 address.
      - Each of these reads is bounded at 2 seconds; a tool still running then is killed and RV(notes) says so.
        When none of the iptables-save tools of the family nor C(nft) is installed, or C(kube-ipvs0) exists
        without C(ipvsadm), RV(notes) says so too, since the address is then traced as a plain address.
    type: str
    version_added: 0.2.0
notes:
  - Needs C(ip) (iproute2) on the node; C(bridge) (iproute2) is used for VXLAN peers and the ports
    of pod bridges when present, C(wg) (wireguard-tools) for WireGuard peers; without C(wg) the
    WireGuard peers are not derived and RV(notes) says so.
  - All commands run with C(LC_ALL=C).
attributes:
  check_mode:
    support: full
    description: Read-only; runs the same in check mode.
seealso:
  - module: hoptrace.k8s.capture
  - module: hoptrace.k8s.probe
'''

EXAMPLES = r'''
- name: Read the routes and links of every node
  hoptrace.k8s.route_info:
  register: net

- name: Where does this node send the destination pod's traffic?
  hoptrace.k8s.route_info:
    ip: 172.17.25.239
  register: net

- name: Read the entry node while the controller builds the modules the next tasks run
  hoptrace.k8s.route_info:
    prebuild: [hoptrace.k8s.capture, hoptrace.k8s.probe]
  register: net

- name: Show the tunnel next hop
  ansible.builtin.debug:
    msg: "{{ net.route_get.dev }} via {{ net.route_get.gateway }}"
'''

RETURN = r'''
hoptrace_path:
  description:
    - Only with O(connect_ahead), when the path could be found from this result without DNS. The
      C(entry), the C(flow) and the C(path) as the C(hoptrace.k8s.trace_path) filter returns it (without
      C(entry_result) and C(summary)); that filter reuses it for the same entry and flow.
  returned: with connect_ahead
  type: dict
hostname:
  description: The node's host name.
  returned: always
  type: str
  sample: node-a
source:
  description: V(json) when iproute2 printed JSON, V(text) when its text output was parsed.
  returned: always
  type: str
  sample: json
routes:
  description:
    - Routes of every table and both families, normalised as in docs/internals.md.
    - C(dst) is V(default), a CIDR, or a bare address for host routes (as iproute2 prints it).
  returned: always
  type: list
  elements: dict
  sample:
    - {dst: 172.17.25.192/26, gateway: 10.240.0.9, dev: tunl0, protocol: bird, scope: global, prefsrc: null,
       metric: null, type: unicast, table: main, flags: [onlink], family: inet, nexthops: []}
links:
  description:
    - Links with C(kind) one of veth, ipip, vxlan, wireguard, bridge, physical, vlan, bond, tun, loopback,
      dummy, other; C(vxlan) is C({id, port, local, dev}) for VXLAN links; C(tun=true) marks a
      userspace tunnel (IPIP or WireGuard).
    - WireGuard links carry C(wireguard) as C({public_key_id, listen_port, fwmark, peers}), each peer
      C({public_key_id, endpoint, endpoint_ip, endpoint_port, allowed_ips, latest_handshake,
      transfer_rx, transfer_tx, persistent_keepalive}) (C(latest_handshake) a Unix time, 0 for none),
      from C(wg show all dump).
  returned: always
  type: list
  elements: dict
  sample:
    - {ifname: tunl0, ifindex: 5, kind: ipip, tun: true, mtu: 1480, operstate: UNKNOWN, link_type: none,
       address: null, master: null, vxlan: null, vlan_id: null}
addresses:
  description: Addresses of every link.
  returned: always
  type: list
  elements: dict
  sample:
    - {ifname: eth0, family: inet, local: 10.240.0.9, prefixlen: 16, scope: global}
workloads:
  description:
    - Local pod addresses, from host routes (scope link) on workload veths (Calico), and from the
      neighbour table and forwarding database of pod bridges (Flannel).
    - A pod behind a bridge also has C(bridge), C(mac) and C(port) (its veth); when the bridge has
      not learned the pod's MAC yet, C(port) is null and C(dev) is the bridge itself.
  returned: always
  type: list
  elements: dict
  sample:
    - {ip: 172.17.25.239, dev: calic25e805a467}
    - {ip: 10.244.1.2, dev: veth9e279555, bridge: cni0, mac: "3a:db:66:e3:c3:4b", port: veth9e279555}
pod_bridges:
  description:
    - Bridges with pod veths as ports and a connected subnet (Flannel's C(cni0)); an address in
      C(subnets) is a pod of this node even before the node has a neighbour entry for it.
    - A dual-stack bridge lists its IPv4 and IPv6 subnets; its link-local C(fe80::/64) is not one.
  returned: always
  type: list
  elements: dict
  version_added: 0.2.0
  sample:
    - {dev: cni0, subnets: [10.244.1.0/24], ports: [veth9e279555, veth53b17d75]}
local_blocks:
  description: Pod blocks of this node (blackhole routes).
  returned: always
  type: list
  elements: str
  sample: [172.17.25.192/26]
remote_blocks:
  description:
    - Routes to other nodes' pod blocks with the encapsulation of their device (ipip, vxlan,
      wireguard, none).
    - C(via) is the route's gateway (for VXLAN the peer's tunnel address), C(node_ip) the peer
      node's underlay address when known (for a link-local C(via), the global address the
      neighbour table gives the same MAC).
  returned: always
  type: list
  elements: dict
  sample:
    - {dst: 172.17.25.64/26, via: 10.240.128.12, dev: tunl0, encap: ipip, protocol: bird, node_ip: 10.240.128.12}
peers:
  description:
    - Underlay device and source address towards each peer node seen in RV(remote_blocks).
    - An IPv6 peer has C(same_link), the other addresses its MAC has in the neighbour table of that
      device (C(ip neigh show dev eth0), read only when there are IPv6 peers), IPv4 first (the
      address an inventory usually names the node by).
  returned: always
  type: list
  elements: dict
  sample:
    - {node_ip: 10.240.128.12, dev: eth0, src: 10.240.0.9, encap: ipip, via: 10.240.128.12}
    - {node_ip: "fd00:10:240::1", dev: eth0, src: "fd00:10:240::2", encap: vxlan, via: "fd00:10:244::40",
       same_link: [10.240.128.12]}
node_ips:
  description: Global addresses of the node that are not on workload, tunnel, pod bridge or loopback links.
  returned: always
  type: list
  elements: str
  sample: [10.240.0.9]
service_rules:
  description:
    - kube-proxy's rules of O(services_for)'s IP family when it is not a pod address, null otherwise or
      when no iptables-save (ip6tables-save for an IPv6 address) shows a C(KUBE-SERVICES) chain. C(source)
      names the tool, C(text) holds the table headers, the C(KUBE-*) chains and the jumps into them as
      the tool prints them.
    - C(ipvs) holds C(ipvsadm -Ln) when the node has kube-proxy's IPVS device C(kube-ipvs0).
    - C(nft) holds C(nft list table ip kube-proxy) (C(ip6 kube-proxy) for an IPv6 address; kube-proxy's
      nftables mode) when no iptables-save shows kube-proxy's chains.
  returned: always
  type: dict
  sample: {source: iptables-save, text: "*nat\n:KUBE-SERVICES - [0:0]\n..."}
notes:
  description:
    - What could not be read and what that leaves out (for example no C(wg) on a node with WireGuard devices).
    - With O(services_for), kube-proxy's rules that could not be read - no tool installed, a tool that did not
      answer within 2 seconds; these notes start with C(kube-proxy's) and the trace role's report lists them.
  returned: always
  type: list
  elements: str
  sample: ["wg (wireguard-tools) is not installed: the peers of wireguard.cali are unknown",
           "kube-proxy's rules on node-a were read with iptables-nft-save, but iptables-save did not answer within 2 s"]
  version_added: 0.2.0
route_get:
  description: The route decision for O(ip), null when O(ip) is not given.
  returned: always
  type: dict
  sample: {dst: 172.17.25.239, dev: tunl0, gateway: 10.240.0.9, prefsrc: 172.17.25.64, type: unicast}
'''

import json
import os
import socket
import traceback

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.hoptrace.k8s.plugins.module_utils import _bounded as bd
from ansible_collections.hoptrace.k8s.plugins.module_utils import _netinfo as ni
from ansible_collections.hoptrace.k8s.plugins.module_utils import _service_rules as sr
from ansible_collections.hoptrace.k8s.plugins.module_utils import _validate as v
from ansible_collections.hoptrace.k8s.plugins.module_utils import _wireguard as wgd
from ansible_collections.hoptrace.k8s.plugins.module_utils._bounded import LC_ENV


def argspec():
    # prebuild is used by the action plugin on the controller and never reaches the node
    return dict(ip=dict(type='str'), prebuild=dict(type='list', elements='str', default=[]),
                services_for=dict(type='str'), connect_ahead=dict(type='dict'))


class IpRunner(object):
    """Runs one iproute2 command as JSON (``-j``) and, when that is unsupported, as text."""

    def __init__(self, module, node):
        self.module = module
        self.node = node
        self.ip = module.get_bin_path('ip', required=True)
        self.bridge = module.get_bin_path('bridge')
        self.json_ok = True

    def run(self, tool, args, optional=False):
        """(data, text): data from JSON when possible, else text for the text parsers."""
        binary = self.ip if tool == 'ip' else self.bridge
        argv = [binary] + args
        if self.json_ok:
            rc, out, err = self.module.run_command([binary, '-j'] + args, environ_update=LC_ENV)
            if rc == 0:
                try:
                    return json.loads(out or '[]'), None
                except ValueError:
                    self.json_ok = False  # old iproute2 that ignores -j for this object
            elif '"-j"' in err or 'unknown' in err.lower():
                self.json_ok = False  # iproute2 without JSON output
            else:
                return self._failed(tool, args, rc, out, err, optional)
        rc, out, err = self.module.run_command(argv, environ_update=LC_ENV)
        if rc != 0:
            return self._failed(tool, args, rc, out, err, optional)
        return None, out

    def _failed(self, tool, args, rc, out, err, optional):
        if optional:
            return None, ''
        self.module.fail_json(msg='`%s %s` failed on %s: %s' % (tool, ' '.join(args), self.node, err.strip() or out.strip()),
                              rc=rc, stderr=err)


def read_routes(runner, family):
    flag = '-4' if family == 'inet' else '-6'
    data, text = runner.run('ip', [flag, 'route', 'show', 'table', 'all'], optional=(family == 'inet6'))
    return ni.routes_from_json(data, family) if data is not None else ni.routes_from_text(text, family)


def read_route_get(runner, address):
    data, text = runner.run('ip', ['route', 'get', address], optional=True)
    return ni.route_get_from_json(data) if data is not None else ni.route_get_from_text(text)


def read_route_gets(runner, addresses):
    """``{address: route_get}`` for many addresses: one ``ip -j -force -batch -`` instead of one
    ``ip route get`` per peer (a 32-node cluster has 31 peers per node); per address as a fallback."""
    addresses = list(dict.fromkeys(addresses))
    if runner.json_ok and len(addresses) > 1:
        batch = ''.join('route get %s\n' % a for a in addresses)
        rc, out, dummy = runner.module.run_command([runner.ip, '-j', '-force', '-batch', '-'], data=batch,
                                                   environ_update=LC_ENV, binary_data=True)
        gets = {}
        decoder = json.JSONDecoder()
        try:
            for line in (out or '').splitlines():
                if line.strip():
                    route = ni.route_get_from_json(decoder.decode(line))
                    if route and route.get('dst') in addresses:
                        gets[route['dst']] = route
        except ValueError:
            gets = {}
        if gets:
            return dict((a, gets.get(a)) for a in addresses)
    return dict((a, read_route_get(runner, a)) for a in addresses)


def read_service_rules(module, links, address=None, notes=None, node=None, seconds=sr.READ_SECONDS):
    """kube-proxy's rules of ``address``'s family from the first iptables-save (ip6tables-save for IPv6)
    that shows them, plus IPVS's virtual servers (``ipvsadm -Ln``) when the node has kube-proxy's
    ``kube-ipvs0`` device; None when neither is there.

    Every read is bounded (``seconds`` each, killed then); what could not be read - no tool installed, a
    tool that did not answer - is a note appended to ``notes``, naming ``node``."""
    notes = notes if notes is not None else []
    node = node or socket.gethostname()
    found, killed, ran = None, [], False
    tools, family = sr.sources(address)

    def read(binary, args=()):
        rc, out, dummy = bd.run(module, [binary] + list(args), seconds)
        if rc is None:
            killed.append(bd.did_not_answer(os.path.basename(binary), seconds))
        return rc, out

    for tool in tools:
        binary = module.get_bin_path(tool)
        if not binary:
            continue
        ran = True
        rc, out = read(binary)
        if rc == 0 and sr.has_services(out):
            found = {'source': tool, 'text': sr.trim(out)}
            break
    nft = module.get_bin_path('nft') if found is None else None
    if nft:
        ran = True
        # kube-proxy's nftables mode keeps its own table (no KUBE-SERVICES chain in iptables then)
        rc, out = read(nft, ['list', 'table', family, sr.NFT_TABLE])
        if rc == 0 and out.strip():
            found = {'source': 'nft', 'text': '', 'nft': out}
    ipvs = any(link.get('ifname') == sr.IPVS_DEVICE for link in links)
    ipvsadm = module.get_bin_path('ipvsadm') if ipvs else None
    if ipvsadm:
        rc, out = read(ipvsadm, ['-Ln'])
        if rc == 0:
            found = dict(found or {'source': 'ipvsadm', 'text': ''}, ipvs=out)
    elif ipvs:
        notes.append(sr.no_ipvsadm_note(node))
    if not ran and found is None:
        notes.append(sr.none_installed_note(node, tools))
    elif killed:
        notes.append(sr.killed_note(node, killed, found))
    return found


def read_wireguard(runner, links, notes):
    """``wg show all dump`` once when the node has WireGuard devices; each device's part goes into
    its link entry (``wireguard``). Returns the parsed devices ({} without any)."""
    names = [link['ifname'] for link in links if link['kind'] == 'wireguard']
    if not names:
        return {}
    wg = runner.module.get_bin_path('wg')
    if not wg:
        notes.append('wg (wireguard-tools) is not installed: the peers of %s are unknown' % ', '.join(names))
        return {}
    rc, out, err = runner.module.run_command([wg, 'show', 'all', 'dump'], environ_update=LC_ENV)
    if rc != 0:
        notes.append('`wg show all dump` failed (%s): the peers of %s are unknown' % (err.strip() or rc, ', '.join(names)))
        return {}
    devices = wgd.parse_dump(out)
    for link in links:
        if link['ifname'] in devices:
            link['wireguard'] = devices[link['ifname']]
    missing = [name for name in names if name not in devices]
    if missing:
        notes.append('wg show all dump does not list %s: its peers are unknown' % ', '.join(missing))
    return devices


def collect(runner, ip=None, services_for=None):
    routes = read_routes(runner, 'inet') + read_routes(runner, 'inet6')
    data, text = runner.run('ip', ['-d', 'link', 'show'])
    links = ni.links_from_json(data) if data is not None else ni.links_from_text(text)
    data, text = runner.run('ip', ['addr', 'show'])
    addresses = ni.addresses_from_json(data) if data is not None else ni.addresses_from_text(text)

    neigh, fdb, ports = {}, {}, {}
    bridges = [b['dev'] for b in ni.pod_bridges(routes, links)]
    # IPv6 BGP routes go via link-local next hops: the neighbour table of their device names the peer
    via_link_local = ni.link_local_devs(routes)
    for link in links:
        if link['kind'] != 'vxlan' and link['ifname'] not in bridges:
            if link['ifname'] in via_link_local:
                data, text = runner.run('ip', ['neigh', 'show', 'dev', link['ifname']], optional=True)
                neigh[link['ifname']] = ni.neigh_from_json(data) if data is not None else ni.neigh_from_text(text)
            continue
        data, text = runner.run('ip', ['neigh', 'show', 'dev', link['ifname']], optional=True)
        neigh[link['ifname']] = ni.neigh_from_json(data) if data is not None else ni.neigh_from_text(text)
        if not runner.bridge:
            continue
        if link['kind'] == 'vxlan':
            data, text = runner.run('bridge', ['fdb', 'show', 'dev', link['ifname']], optional=True)
            fdb[link['ifname']] = ni.fdb_from_json(data) if data is not None else ni.fdb_from_text(text)
        else:  # a pod bridge (cni0): which port each pod's MAC was learned on
            data, text = runner.run('bridge', ['fdb', 'show', 'br', link['ifname']], optional=True)
            ports[link['ifname']] = (ni.bridge_ports_from_json(data, link['ifname']) if data is not None
                                     else ni.bridge_ports_from_text(text, link['ifname']))

    notes = []
    wg_devices = read_wireguard(runner, links, notes)
    result = ni.derive(routes, links, addresses, neigh, fdb, ports,
                       wg_resolve=ni.wireguard_resolver(wg_devices, wgd.peer_for) if wg_devices else None)
    gets = read_route_gets(runner, [target[0] for target in ni.peer_targets(result['remote_blocks'])])
    result['peers'] = ni.peers(result['remote_blocks'], links, gets)
    # IPv6 peers: their underlay neighbour table ties each one's IPv6 address to its IPv4 one (same MAC)
    for dev in ni.same_link_devs(result['peers']):
        if dev not in neigh:
            data, text = runner.run('ip', ['neigh', 'show', 'dev', dev], optional=True)
            neigh[dev] = ni.neigh_from_json(data) if data is not None else ni.neigh_from_text(text)
    ni.add_same_link(result['peers'], neigh)
    result.update(routes=routes, links=links, addresses=addresses, source='json' if runner.json_ok else 'text',
                  route_get=read_route_get(runner, ip) if ip else None, notes=notes)
    result['service_rules'] = (read_service_rules(runner.module, links, services_for, notes, runner.node)
                               if services_for and sr.needs_rules(result, services_for) else None)
    return result


def execute_module(module):
    node = socket.gethostname()
    ip, services_for = module.params['ip'], module.params['services_for']
    try:
        ip = v.check_ip(ip, 'ip') if ip else None
        services_for = v.check_ip(services_for, 'services_for') if services_for else None
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    try:
        result = collect(IpRunner(module, node), ip, services_for)
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        module.fail_json(msg='could not read the output of iproute2 on %s: %s; report it with the output of '
                             '`ip -j route show table all` and `ip -j -d link`' % (node, exc),
                         exception=traceback.format_exc())
    module.exit_json(changed=False, hostname=node, **result)


def main():
    module = AnsibleModule(argument_spec=argspec(), supports_check_mode=True)
    execute_module(module)


if __name__ == '__main__':
    main()
