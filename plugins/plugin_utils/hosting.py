# -*- coding: utf-8 -*-
# Copyright (c) hoptrace developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Path-only discovery: which nodes host ``src`` and ``dst``, read from ONE node's routes.

A Calico node's routing table names the node of every pod block: a remote block route
``via <node IP>`` (IPIP, BGP, CrossSubnet), a VXLAN route via the remote tunnel address whose
permanent neighbour and fdb entries give the remote node's underlay IP, a local ``cali*`` /32
route (the pod is here), a blackhole block route (the block is this node's). So one entry node's
route_info result is enough to find the 1-2 nodes on the path; only those are read next.

The node IPs found are mapped to inventory hosts from what the inventory says of each host
(``ansible_host``, kubespray's ``ip`` and ``access_ip``, the host name, and, only when that
finds nothing, the host names' resolved addresses) - never by contacting a host.
"""

from __future__ import annotations

from ansible_collections.hoptrace.k8s.plugins.module_utils._netinfo import ROUTING_PROTOCOLS, is_link_local
from ansible_collections.hoptrace.k8s.plugins.module_utils._service_rules import is_note as is_rules_note
from ansible_collections.hoptrace.k8s.plugins.module_utils._wireguard import peer_for
from ansible_collections.hoptrace.k8s.plugins.plugin_utils.addr import AddressError, ip_address
from ansible_collections.hoptrace.k8s.plugins.plugin_utils.addr import same_ip as _same
from ansible_collections.hoptrace.k8s.plugins.plugin_utils.plan import _route, bridge_of, link_kind, node_workloads
from ansible_collections.hoptrace.k8s.plugins.plugin_utils.service_text import hostport
from ansible_collections.hoptrace.k8s.plugins.plugin_utils.services import ServiceError, service_of
from ansible_collections.hoptrace.k8s.plugins.plugin_utils.routes import DEAD_TYPES, RouteError, as_routes, route_egress, route_network

# where a node's address may be written in an inventory, in the order they are tried (kubespray's
# ip6 / access_ip6 name a dual-stack node's IPv6 address)
ADDRESS_VARS = ("ansible_host", "ip", "access_ip", "ip6", "access_ip6")
# the groups looked for when the user names none: ours, then kubespray's
DEFAULT_GROUPS = ("nodes", "k8s_cluster", ("kube_node", "kube_control_plane"))
_SHOWN = 8


class PathError(ValueError):
    """The path cannot be found from what was read; the message says what was searched and what to fix."""


def _is_ip(value):
    try:
        ip_address(value)
        return True
    except AddressError:
        return False


def _listed(names):
    names = list(names)
    shown = ", ".join(names[:_SHOWN])
    if len(names) > _SHOWN:
        shown += " and %d more" % (len(names) - _SHOWN)
    return shown or "none"


# ---------------------------------------------------------------------------------------------
# the inventory group of the cluster's nodes


def node_group(groups, requested=None):
    """``{"name", "hosts", "how"}`` of the group of the cluster's nodes.

    :arg groups: Ansible's ``groups`` (group name -> host names).
    :arg requested: the group the user named (``-e nodes=GROUP``), or empty for the defaults:
        ``nodes``, else kubespray's ``k8s_cluster``, else ``kube_node`` + ``kube_control_plane``.
    :raises PathError: when that group (or every default) has no host; the message names the
        groups this inventory has.
    """
    groups = groups or {}
    existing = sorted(g for g, hosts in groups.items() if g not in ("all", "ungrouped") and hosts)

    def hosts_of(names):
        found = []
        for name in names:
            for host in groups.get(name) or []:
                if host not in found:
                    found.append(host)
        return found

    if requested:
        hosts = hosts_of([requested])
        if not hosts:
            raise PathError(
                "the inventory group %r (-e nodes=%s) has no hosts; groups with hosts in this inventory: %s. "
                "Name the group of the cluster's nodes" % (requested, requested, _listed(existing))
            )
        return {"name": requested, "hosts": hosts, "how": "the group named with -e nodes"}
    for choice in DEFAULT_GROUPS:
        names = choice if isinstance(choice, tuple) else (choice,)
        hosts = hosts_of(names)
        if hosts:
            how = "the default group" if names == ("nodes",) else "kubespray's group%s" % ("s" if len(names) > 1 else "")
            return {"name": " + ".join(names), "hosts": hosts, "how": how}
    raise PathError(
        "no inventory group of cluster nodes: none of nodes, k8s_cluster, kube_node or kube_control_plane has hosts; "
        "groups with hosts in this inventory: %s. Name the group with -e nodes=GROUP" % _listed(existing)
    )


# ---------------------------------------------------------------------------------------------
# one address, from the entry node's routes


def _remote_node_ip(node, gateway, dev):
    """The underlay IP of the node behind a VXLAN next hop: route_info's remote_blocks and peers
    carry it, resolved on the node from the permanent neighbour (tunnel IP -> MAC) and fdb
    (MAC -> underlay IP) entries of the vxlan device."""
    for entry in list(node.get("remote_blocks") or []) + list(node.get("peers") or []):
        if isinstance(entry, dict) and entry.get("node_ip") and _same(entry.get("via"), gateway) \
                and entry.get("dev") in (None, dev):
            return entry["node_ip"]
    return None


def _wireguard_peer(node, dev, address):
    """The WireGuard peer of ``dev`` whose AllowedIPs hold ``address`` (route_info puts each
    device's ``wg show all dump`` peers into its links entry), or None."""
    for link in node.get("links") or []:
        if isinstance(link, dict) and link.get("ifname") == dev:
            return peer_for(link.get("wireguard"), str(address))
    return None


def _same_link(node, node_ip):
    """The peer's other addresses: route_info gives an IPv6 peer those its MAC has in the neighbour
    table (``peers[].same_link``)."""
    for entry in node.get("peers") or []:
        if isinstance(entry, dict) and _same(entry.get("node_ip"), node_ip):
            return [a for a in entry.get("same_link") or [] if not _same(a, node_ip)]
    return []


def _route_text(route):
    if not route:
        return "no route"
    words = [] if route.get("type", "unicast") == "unicast" else [route["type"]]
    words.append(str(route.get("dst") or "default"))
    for gateway, dev in route_egress(route)[:1]:
        if gateway:
            words += ["via", gateway]
        if dev:
            words += ["dev", dev]
    if route.get("protocol") not in (None, "boot", "kernel"):
        words += ["proto", str(route["protocol"])]
    return " ".join(words)


def _in_local_block(node, address):
    target = ip_address(address)
    for block in node.get("local_blocks") or []:
        try:
            if target in route_network({"dst": block}):
                return block
        except RouteError:
            continue
    return None


def locate(entry_name, entry, address):
    """Where ``address`` lives, as the entry node's routes say.

    Returns ``{"address", "how", "node_ip", "host", "evidence"}`` where ``how`` is
    ``local`` (a workload route, or a pod behind the entry node's pod bridge such as Flannel's
    ``cni0``; ``host`` is the entry), ``blackhole`` (the
    address is in one of the entry node's own blocks, with no pod route; ``host`` is the entry),
    ``via`` (a block routed via a node IP: IPIP, BGP; via an IPv6 link-local next hop, ``link_local``
    is that hop and ``node_ip`` the global address route_info mapped it to, or None), ``vxlan`` (a block via a remote VTEP,
    ``node_ip`` from its neighbour/fdb entries), ``wireguard`` (a block on the WireGuard device:
    ``node_ip`` is the endpoint of the peer whose AllowedIPs hold the address, ``peer`` that
    peer's public key id), ``external`` (routed off the cluster, e.g. by the
    default route) or ``unrouted`` (no route, or an unreachable/prohibit route).
    """
    found = {"address": address, "how": None, "node_ip": None, "host": None, "evidence": None, "dev": None}
    for workload in node_workloads(entry):
        if _same(workload.get("ip"), address):
            found.update(how="local", host=entry_name, evidence="%s dev %s" % (address, workload.get("dev")))
            return found
    bridge = bridge_of(entry, address)
    if bridge:  # a pod behind the entry node's cni0 that the node has no neighbour entry for yet
        found.update(how="local", host=entry_name, dev=bridge,
                     evidence="%s in the pod subnet of %s (no neighbour entry yet)" % (address, bridge))
        return found
    route = _route(entry_name, entry, address)
    found["evidence"] = _route_text(route)
    if route is None:
        found["how"] = "unrouted"
        return found
    if route.get("type") in DEAD_TYPES:
        block = _in_local_block(entry, address)
        if route.get("type") == "blackhole" or block:
            found.update(how="blackhole", host=entry_name)
        else:
            found["how"] = "unrouted"
        return found
    if route.get("table") == "local":
        found.update(how="local", host=entry_name)  # one of the entry node's own addresses
        return found
    egress = [pair for pair in route_egress(route) if pair[1]]
    gateway, dev = egress[0] if egress else (None, None)
    kind = link_kind(entry, dev) if dev else None
    found["dev"] = dev
    if kind == "vxlan" and gateway:
        found["how"] = "vxlan"
        found["node_ip"] = _remote_node_ip(entry, gateway, dev)
    elif kind == "wireguard":
        found["how"] = "wireguard"
        peer = _wireguard_peer(entry, dev, address)
        if peer is not None:
            found["peer"] = peer.get("public_key_id")
            found["node_ip"] = peer.get("endpoint_ip")
            if not found["node_ip"]:
                found["peer_without_endpoint"] = True
    elif gateway and is_link_local(gateway) and str(route.get("protocol")) in ROUTING_PROTOCOLS:
        # IPv6 BGP: the next hop is the peer's link-local address; route_info mapped it through the
        # neighbour table (same MAC) to the peer's global address, when it could
        found.update(how="via", node_ip=_remote_node_ip(entry, gateway, dev), link_local=gateway)
    elif gateway and (kind == "ipip" or str(route.get("protocol")) in ROUTING_PROTOCOLS):
        found.update(how="via", node_ip=gateway)
    else:
        found["how"] = "external"
    if found["node_ip"]:
        found["same_link"] = _same_link(entry, found["node_ip"])
    return found


# ---------------------------------------------------------------------------------------------
# node IP -> inventory host


def inventory_addresses(host_vars):
    """``[(host, address or name, where)]`` from ``{host: {var: value}}`` (only ADDRESS_VARS are read)."""
    found = []
    for host, values in host_vars.items():
        values = values or {}
        for var in ADDRESS_VARS:
            value = values.get(var)
            if value not in (None, ""):
                found.append((host, str(value), var))
        found.append((host, str(host), "the host name"))
    return found


def map_node_ip(node_ip, addresses, resolve=None, why=""):
    """The inventory host whose address is ``node_ip``; ``(host, where)``.

    :arg addresses: ``inventory_addresses(...)``.
    :arg resolve: optional ``resolve(names) -> {name: [addresses]}``, asked only when no host
        writes the address literally (host names and non-IP ``ansible_host`` values).
    :raises PathError: no host, or several hosts, have that address.
    """
    matches = {}
    for host, value, where in addresses:
        if _is_ip(value) and _same(value, node_ip):
            matches.setdefault(host, where)
    if not matches and resolve is not None:
        names = sorted({value for _host, value, _where in addresses if not _is_ip(value)})
        resolved = resolve(names) or {}
        for host, value, where in addresses:
            if not _is_ip(value) and any(_same(a, node_ip) for a in resolved.get(value) or []):
                matches.setdefault(host, "%s %s, resolved" % (where, value))
    if len(matches) == 1:
        return next(iter(matches.items()))
    if not matches:
        raise PathError(
            "node IP %s%s is not the address of any inventory host in the group: none has it as %s, "
            "as its name, or as its name's resolved address. Add %s=%s (or ansible_host) to that node's "
            "inventory entry, or trace with -e nodes=GROUP naming the group that holds it"
            % (node_ip, why, ", ".join(ADDRESS_VARS), "ip6" if ":" in str(node_ip) else "ip", node_ip)
        )
    raise PathError(
        "node IP %s%s belongs to several inventory hosts: %s; keep one inventory entry per node, or "
        "trace with -e nodes=GROUP naming a group where it is unique"
        % (node_ip, why, ", ".join("%s (%s)" % item for item in sorted(matches.items())))
    )


# ---------------------------------------------------------------------------------------------
# the path


_ROLE = {"src": "source", "dst": "destination"}


def _host_for(what, place, entry_name, addresses, resolve):
    if place["host"]:
        return place["host"], "the entry node's route %s" % place["evidence"]
    if place["how"] in ("via", "vxlan") and place["node_ip"]:
        why = " (where %s's route %s sends the %s %s)" % (entry_name, place["evidence"], what, place["address"])
        try:
            host, where = map_node_ip(place["node_ip"], addresses, resolve, why)
        except PathError:
            # an IPv6 node address the inventory does not write: the node's other address on the same
            # link (its MAC in the entry node's neighbour table), when exactly one host has one of them
            found = {}
            for other in place.get("same_link") or []:
                try:
                    other_host, other_where = map_node_ip(other, addresses)
                except PathError:
                    continue
                found.setdefault(other_host, (other, other_where))
            if len(found) != 1:
                raise
            host, (other, where) = next(iter(found.items()))
            return host, "%s's route %s; %s has the MAC of %s, %s of %s (%s's neighbour table)" % (
                entry_name, place["evidence"], place["node_ip"], other, where, host, entry_name)
        return host, "%s's route %s; %s is %s of %s" % (entry_name, place["evidence"], place["node_ip"], where, host)
    if place["how"] == "via" and place.get("link_local"):
        raise PathError(
            "%s routes the %s %s via the link-local address %s (%s): no entry of its neighbour table on %s "
            "(ip neigh show dev %s) shares that next hop's MAC with a global address of the peer node, so "
            "the node behind it is unknown. Pass -e via=HOST naming the node that holds the pod, or trace "
            "once traffic to that node has filled the neighbour table"
            % (entry_name, what, place["address"], place["link_local"], place["evidence"], place["dev"], place["dev"])
        )
    if place["how"] == "wireguard" and place["node_ip"]:
        why = " (the endpoint of %s's WireGuard peer %s, whose allowed IPs hold the %s %s)" % (
            entry_name, place.get("peer"), what, place["address"])
        host, where = map_node_ip(place["node_ip"], addresses, resolve, why)
        return host, "%s's route %s; WireGuard peer %s (allowed IPs hold %s) has endpoint %s, %s of %s" % (
            entry_name, place["evidence"], place.get("peer"), place["address"], place["node_ip"], where, host)
    if place["how"] == "vxlan":
        raise PathError(
            "%s routes the %s %s over VXLAN (%s) but has no neighbour/fdb entry that names the remote "
            "node's underlay address (ip neigh show dev %s; bridge fdb show dev %s); pass -e via=HOST "
            "naming a node that holds the pod"
            % (entry_name, what, place["address"], place["evidence"], place["dev"], place["dev"])
        )
    if place["how"] == "wireguard":
        if place.get("peer_without_endpoint"):
            missing = "its WireGuard peer %s (whose allowed IPs hold it) has no endpoint yet" % place.get("peer")
        else:
            missing = "no peer of %s in `wg show %s dump` has allowed IPs that hold it (is wg installed there?)" % (
                place["dev"], place["dev"])
        raise PathError(
            "%s routes the %s %s into WireGuard (%s), but %s; pass -e via=HOST naming the node that "
            "holds the pod" % (entry_name, what, place["address"], place["evidence"], missing)
        )
    return None, None


def _add_host(result, place, entry_name, entry, entry_address):
    host = place["host"]
    if host is not None and host not in result["hosts"]:
        result["hosts"].append(host)
        ip = place["node_ip"]
        if ip is None and host == entry_name:
            ip = entry_address or next(iter(entry.get("node_ips") or []), None)
        result["node_ips"][host] = ip


def _node_host(address, addresses):
    """The inventory host whose address ``address`` is (a NodePort's node), or None."""
    try:
        return map_node_ip(address, addresses)[0]
    except PathError:
        return None


def _nodeport_place(entry_name, entry, service, node_host, place, addresses, resolve):
    """A NodePort: the node that owns the address DNATs (and masquerades) to its one endpoint, a pod of
    that node, of a third one or of the source pod's own node (externalTrafficPolicy Cluster: the node
    forwards to the endpoint's node with the source masqueraded to its own address), or several (at most
    services.MAX_ENDPOINTS), each a candidate. Returns ``(place of the node addressed, [the places of the
    endpoints on other nodes than it]``; with several endpoints every endpoint's place)."""
    if not service["endpoints"]:
        raise PathError(
            "NodePort %s (%s) has no endpoints; tracing a NodePort follows its endpoints: trace the "
            "endpoint itself with -e dst=IP -e port=PORT" % (hostport(service["address"], service["port"]), service["service"]))
    if len(service["endpoints"]) > 1:
        # kube-proxy on the node addressed picks one per connection: every endpoint is a candidate, each its
        # own path (services.nodeport_plan), and the captures and that node's conntrack tell which it took
        places = [_endpoint_place(entry_name, entry, service, e, addresses, resolve) for e in service["endpoints"]]
        service["dnat_on"] = node_host
        place = dict(place, how="nodeport", host=node_host, node_ip=service["address"],
                     found_by="the NodePort's node %s (%s); endpoints %s" % (node_host, service["address"], ", ".join(
                         "%s on %s" % (hostport(e["ip"], e["port"]), e.get("host")) for e in service["endpoints"])))
        return place, places
    endpoint = service["endpoints"][0]
    backend = _endpoint_place(entry_name, entry, service, endpoint, addresses, resolve)
    service["backend"] = dict(endpoint)
    service["dnat_on"] = node_host
    service["chosen_by"] = "the Service's only endpoint"
    remote = backend["host"] != node_host
    there = "on %s" % backend["host"] if remote else "there"
    place = dict(place, how="nodeport", host=node_host, node_ip=service["address"],
                 found_by="the NodePort's node %s (%s); backend %s %s (%s)" % (
                     node_host, service["address"], hostport(endpoint["ip"], endpoint["port"]), there, backend["found_by"]))
    return place, ([backend] if remote else [])


def _endpoint_place(entry_name, entry, service, endpoint, addresses, resolve):
    """Where a Service endpoint lives (a pod), as the entry node's routes say; the endpoint gets ``host``."""
    place = locate(entry_name, entry, endpoint["ip"])
    if place["how"] in ("external", "unrouted"):
        raise PathError(
            "Service %s (%s) DNATs to %s, which %s's routes do not place on a node (%s): the endpoint is "
            "outside the pod network" % (service["service"], hostport(service["address"], service["port"]),
                                         hostport(endpoint["ip"], endpoint["port"]), entry_name, place["evidence"]))
    place["host"], place["found_by"] = _host_for("endpoint", place, entry_name, addresses, resolve)
    endpoint["host"] = place["host"]
    return place


def trace_path(entry_name, entry, flow, addresses, resolve=None, entry_address=None):
    """The hosting nodes of ``flow``'s pods from the entry node's route_info result.

    :returns: ``{"entry", "src": place, "dst": place, "hosts": [...], "node_ips": {host: ip},
        "read": [hosts to read before planning], "deferred": [hosts that resolve their devices
        when their captures start]}``
        where each place is :func:`locate`'s dict plus ``host`` and ``found_by`` (a sentence);
        ``dst.host`` is None for a destination outside the cluster; ``notes``, the entry's route_info notes
        about kube-proxy's rules (``_service_rules.is_note``).
    :raises PathError: src is not a pod the routes know; a node IP maps to no or several hosts.
    """
    if not isinstance(entry, dict) or "routes" not in entry:
        raise PathError("the entry node %s returned no route_info result" % entry_name)
    entry = dict(entry)
    try:
        entry["routes"] = as_routes(entry["routes"])
    except RouteError as exc:
        raise PathError("entry node %s: %s" % (entry_name, exc)) from None
    # what the entry node could not read of kube-proxy's rules (no tool, a tool that did not answer): the
    # report's notes say it, since a Service address is then traced as a plain one
    notes = [n for n in entry.get("notes") or [] if is_rules_note(n)]
    result = {"entry": entry_name, "hosts": [], "node_ips": {}, "service": None, "notes": notes}
    for what in ("src", "dst"):
        place = locate(entry_name, entry, flow[what])
        if what == "dst" and place["how"] in ("external", "unrouted"):
            # not a pod: a Service address when the entry node's kube-proxy rules name it; the hops after
            # the source node's DNAT go to its backend (plugin_utils/services.py)
            node_host = _node_host(flow["dst"], addresses)
            try:
                service = service_of(entry_name, entry, flow, local=node_host is not None)
            except ServiceError as exc:
                raise PathError(str(exc)) from None
            result["service"] = service
            if service and service["kind"] == "nodeport":
                place, remote = _nodeport_place(entry_name, entry, service, node_host, place, addresses, resolve)
                if remote:
                    # the endpoint's node comes after the node addressed: hosts [source, NodePort, backend], or
                    # [source, NodePort] when the backend is a pod of the source's own node (it comes back there)
                    _add_host(result, dict(place, found_by=None), entry_name, entry, entry_address)
                    for other in remote:
                        _add_host(result, other, entry_name, entry, entry_address)
            elif service and service["endpoints"]:
                places = [_endpoint_place(entry_name, entry, service, e, addresses, resolve) for e in service["endpoints"]]
                place = places[0]
                for extra in places[1:]:
                    _add_host(result, extra, entry_name, entry, entry_address)
        if place.get("found_by"):
            host, found_by = place["host"], place["found_by"]   # a Service endpoint, placed above
        else:
            host, found_by = _host_for(what, place, entry_name, addresses, resolve)
        if host is None and what == "src":
            raise PathError(
                "src %s is not a pod the entry node %s knows: its route for it is %s (%s). Give the IP of "
                "a running pod (kubectl get pods -o wide), or pass -e via=HOST naming a node of the cluster"
                % (flow["src"], entry_name, place["evidence"], place["how"])
            )
        place["host"], place["found_by"] = host, found_by
        result[what] = place
        _add_host(result, place, entry_name, entry, entry_address)
    # when the entry node holds a pod, its routes plan the whole trace: the other path node is
    # not read before its captures start (it resolves its own devices, plugin_utils/deferred.py);
    # an entry off the path tells where the pods are but not their veths, so both are read
    on_path = entry_name in result["hosts"]
    result["read"] = [] if on_path else list(result["hosts"])
    result["deferred"] = [h for h in result["hosts"] if h != entry_name] if on_path else []
    service = result["service"]
    if service and service["kind"] == "nodeport" and (
            len(service["endpoints"]) > 1 or any(e.get("host") not in (None, service["dnat_on"]) for e in service["endpoints"])):
        # a NodePort forwarded to another node (a third one or the source's): the filters after the masquerade
        # need the NodePort node's own address toward the backend (its tunnel device's), and its route to the
        # backend, so it is read, as is the backend's node when it is not the entry; with several endpoints too
        # (each candidate keeps its own captures, which a node resolving its devices later would not fill in)
        result["read"] = [h for h in result["hosts"] if h != entry_name]
        result["deferred"] = []
    return result


def summary(path, group=None):
    """What the report keeps of the path: the entry, the group (its host count, not its hosts), the
    path hosts, those not read before planning (``deferred``), one sentence per pod and the path's notes."""
    out = {"entry": path["entry"], "hosts": list(path["hosts"]), "deferred": list(path.get("deferred") or []),
           "lines": describe(path), "notes": list(path.get("notes") or [])}
    if group:
        out["group"] = {"name": group.get("name"), "how": group.get("how"), "hosts": len(group.get("hosts") or [])}
    return out


def describe(path):
    """One line per pod: which node hosts it and how that was found."""
    lines = []
    for what in ("src", "dst"):
        place = path[what]
        if what == "dst" and path.get("service"):
            svc = path["service"]
            if svc["kind"] == "nodeport" and not svc["backend"]:
                ends = "NodePort of %s, endpoints %s" % (place["host"], ", ".join(
                    "%s %s" % (hostport(e["ip"], e["port"]), "there" if e.get("host") == place["host"] else "on %s" % e.get("host"))
                    for e in svc["endpoints"]))
            elif svc["kind"] == "nodeport":
                backend_host = svc["backend"].get("host")
                there = "on %s" % backend_host if backend_host and backend_host != place["host"] else "there"
                ends = "NodePort of %s, backend %s %s" % (place["host"], hostport(svc["backend"]["ip"], svc["backend"]["port"]), there)
            elif svc["backend"]:
                ends = "backend %s on %s (%s)" % (hostport(svc["backend"]["ip"], svc["backend"]["port"]), place["host"], place["found_by"])
            elif svc["endpoints"]:
                ends = "endpoints %s" % ", ".join("%s on %s" % (hostport(e["ip"], e["port"]), e.get("host")) for e in svc["endpoints"])
            elif svc["service"] is None:        # nft's cluster-ips-check: an address and port no Service has
                lines.append("dst %s: no Service in %s's kube-proxy rules (%s), refused by %s" % (
                    hostport(svc["address"], svc["port"]), path["entry"], svc["mode"], svc["rejected"]))
                continue
            else:
                ends = "no endpoints"
            lines.append("dst %s: Service %s in %s's kube-proxy rules (%s), %s" % (
                hostport(svc["address"], svc["port"]), svc["service"], path["entry"], svc["mode"], ends))
        elif place["host"] is None:
            lines.append("%s %s: outside the cluster (%s's route %s)" % (what, place["address"], path["entry"], place["evidence"]))
        else:
            lines.append("%s %s: on %s (%s)" % (what, place["address"], place["host"], place["found_by"]))
    return lines
