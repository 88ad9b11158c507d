"""The lab's kube-proxy nft table (tests/lab/kubeproxy_nft.py) names its chains as kube-proxy does: the
hashes of a real k3s node's `nft list table ip kube-proxy` (tests/unit/fixtures/services) come out the
same, and the table carries the lab's Services. Pure: no root, no lab."""
import os

from lab import kubeproxy, kubeproxy_nft

REAL = open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "unit", "fixtures", "services",
                         "nft-kube-proxy-table.txt")).read()


def test_chain_names_hash_as_kube_proxys():
    names = [kubeproxy_nft.service_chain("default/kubernetes:https"),
             kubeproxy_nft.endpoint_chain("default/kubernetes:https", "10.34.4.142:6443"),
             kubeproxy_nft.service_chain("kube-system/kube-dns:dns-tcp"),
             kubeproxy_nft.endpoint_chain("kube-system/kube-dns:dns-tcp", "10.42.0.171:53"),
             kubeproxy_nft.external_chain("riset/hellopod-np-svc:")]
    assert names == ["service-2QRHZV4L-default/kubernetes/tcp/https",
                     "endpoint-MIBO4EMV-default/kubernetes/tcp/https__10.34.4.142/6443",
                     "service-NWBZK7IH-kube-system/kube-dns/tcp/dns-tcp",
                     "endpoint-T5HMVMWK-kube-system/kube-dns/tcp/dns-tcp__10.42.0.171/53",
                     "external-P6J77WGM-riset/hellopod-np-svc/tcp/"]
    for name in names:
        assert "chain %s {" % name in REAL or "goto %s" % name in REAL


def test_the_table_holds_the_lab_services():
    text = kubeproxy_nft.ruleset()
    assert text.startswith('table ip kube-proxy {\n\tcomment "rules for kube-proxy"\n')
    for s in kubeproxy.services():
        if s["endpoints"]:
            assert "%s . tcp . %d : goto %s" % (s["cluster_ip"], s["port"], kubeproxy_nft.service_chain(s["port_name"])) in text
            for ep in s["endpoints"]:
                assert "meta l4proto tcp dnat to %s\n" % ep in text
        else:
            assert '%s . tcp . %d comment "%s" : goto reject-chain' % (s["cluster_ip"], s["port"], s["port_name"]) in text
    assert "tcp . 30443 : goto external-QRJBX24H-default/web-nodeport/tcp/https" in text
    assert "tcp . 30444 : goto external-DSGBGX2Y-default/web-remote/tcp/https" in text
    assert "numgen random mod 2 vmap { 0 : goto endpoint-YC5AT2E7-default/web/tcp/https__172.17.25.66/443, " \
           "1 : goto endpoint-3SRHVVVD-default/web/tcp/https__172.17.25.193/443 }" in text
    # no iptables kube-proxy chain in this mode
    assert "KUBE-" not in text


KNFT6 = open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "unit", "fixtures", "services",
                          "knftables-ip6-kube-proxy-nft-list.txt")).read()
IP6_OF = {"172.17.25.239": "fd00:10:244::af", "172.17.25.66": "fd00:10:244::42", "172.17.25.193": "fd00:10:244::81"}


def test_ipv6_endpoint_names_hash_as_kube_proxys():
    # kube-proxy's IPv6 dump (knftables fake_test.go): the endpoint's address with ':' as '.', no brackets
    names = [kubeproxy_nft.service_chain("ns1/svc1:p80"), kubeproxy_nft.endpoint_chain("ns1/svc1:p80", "[fd00:10:180::1]:80"),
             kubeproxy_nft.endpoint_chain("ns1/svc1:p80", "[fd00:10:180::2:1]:80"), kubeproxy_nft.external_chain("ns1/svc1:p80")]
    assert names == ["service-ULMVA6XW-ns1/svc1/tcp/p80", "endpoint-ZVRFLKHO-ns1/svc1/tcp/p80__fd00.10.180..1/80",
                     "endpoint-2CRNCTTE-ns1/svc1/tcp/p80__fd00.10.180..2.1/80", "external-ULMVA6XW-ns1/svc1/tcp/p80"]
    for name in names:
        assert "chain %s {" % name in KNFT6


def test_the_ip6_table_holds_the_dual_stack_services():
    text = kubeproxy_nft.ruleset(6, IP6_OF)
    assert text.startswith('table ip6 kube-proxy {\n\tcomment "rules for kube-proxy"\n')
    assert "fd00:10:96::14 . tcp . 443 : goto service-WF3IK77V-openshift-ingress/router-internal-default/tcp/https" in text
    assert "\t\tip6 daddr fd00:10:96::14 tcp dport 443 ip6 saddr != fd00:10:244::/48 jump mark-for-masquerade\n" in text
    assert "\t\tmeta l4proto tcp dnat to [fd00:10:244::af]:443\n" in text
    assert 'fd00:10:96::28 . tcp . 443 comment "default/empty:https" : goto reject-chain' in text
    assert 'ip6 daddr { fd00:10:96::/112 } drop' in text and "ip6 daddr != ::1 meta l4proto" in text
    assert " ip daddr" not in text and "ipv4_addr" not in text and "10.96." not in text
    # the IPv4 table is unchanged by a dual-stack lab
    assert kubeproxy_nft.ruleset() == kubeproxy_nft.ruleset(4, IP6_OF)


def test_the_ip6tables_ruleset_of_the_dual_stack_services():
    text, chains = kubeproxy.rules(6, IP6_OF)
    lines = text.splitlines()
    assert ("-A KUBE-SERVICES -d fd00:10:96::14/128 -p tcp -m comment --comment \"openshift-ingress/router-internal-default:https "
            "cluster IP\" -m tcp --dport 443 -j KUBE-SVC-PIUKAOOLWSYDMVAC") in lines
    # kube-proxy hashes the endpoint as it prints it, [IPv6]:PORT
    assert kubeproxy.sep_chain("openshift-ingress/router-internal-default:https", "[fd00:10:244::af]:443") == "KUBE-SEP-BM6BBDMQJ2VFHN2F"
    assert ("-A KUBE-SEP-BM6BBDMQJ2VFHN2F -p tcp -m comment --comment \"openshift-ingress/router-internal-default:https\" -m tcp "
            "-j DNAT --to-destination [fd00:10:244::af]:443") in lines
    assert "-A KUBE-SEP-BM6BBDMQJ2VFHN2F -s fd00:10:244::af/128 -m comment --comment \"openshift-ingress/router-internal-default:https\" " \
           "-j KUBE-MARK-MASQ" in lines
    assert ("-A KUBE-SERVICES -d fd00:10:96::28/128 -p tcp -m comment --comment \"default/empty:https has no endpoints\" -m tcp "
            "--dport 443 -j REJECT --reject-with icmp6-port-unreachable") in lines
    assert "10.96." not in text and "172.17." not in text
    assert kubeproxy.rules() == kubeproxy.rules(4, IP6_OF)


def test_the_iptables_rules_send_the_remote_nodeport_to_node_cs_pod():
    # default/web-remote: every node's KUBE-NODEPORTS -> KUBE-EXT (masquerade mark) -> KUBE-SVC -> KUBE-SEP DNAT to node-c's pod
    text, chains = kubeproxy.rules()
    ext, svc, sep = (kubeproxy.ext_chain("default/web-remote:https"), kubeproxy.svc_chain("default/web-remote:https"),
                     kubeproxy.sep_chain("default/web-remote:https", "172.17.26.1:443"))
    assert (ext, svc, sep) == ("KUBE-EXT-UNZ76BFHH3NSJNR5", "KUBE-SVC-UNZ76BFHH3NSJNR5", "KUBE-SEP-OYTONJ76OZZNQ4LP")
    lines = text.splitlines()
    for line in ['-A KUBE-NODEPORTS -p tcp -m comment --comment "default/web-remote:https" -m tcp --dport 30444 -j %s' % ext,
                 '-A %s -m comment --comment "masquerade traffic for default/web-remote:https external destinations" '
                 '-j KUBE-MARK-MASQ' % ext, "-A %s -j %s" % (ext, svc),
                 '-A %s -m comment --comment "default/web-remote:https -> 172.17.26.1:443" -j %s' % (svc, sep),
                 '-A %s -p tcp -m comment --comment "default/web-remote:https" -m tcp -j DNAT --to-destination 172.17.26.1:443' % sep]:
        assert line in lines
    assert {ext, svc, sep} <= set(chains)


def test_a_dual_stack_lab_without_node_c_has_no_ipv6_endpoint_for_the_remote_nodeport():
    # IP6_OF is a 2-node lab's: node-c's pod 172.17.26.1 has no IPv6 address there, so, as kube-proxy with one
    # EndpointSlice per family, default/web-remote has no IPv6 endpoint and its IPv6 ClusterIP is rejected
    remote = next(s for s in kubeproxy.services(IP6_OF) if s["name"] == "default/web-remote")
    assert (remote["cluster_ip6"], remote["endpoints"], remote["endpoints6"]) == ("fd00:10:96::3c", ["172.17.26.1:443"], [])
    text, _chains = kubeproxy.rules(6, IP6_OF)
    assert ("-A KUBE-SERVICES -d fd00:10:96::3c/128 -p tcp -m comment --comment \"default/web-remote:https has no endpoints\" -m tcp "
            "--dport 443 -j REJECT --reject-with icmp6-port-unreachable") in text.splitlines()
    assert 'fd00:10:96::3c . tcp . 443 comment "default/web-remote:https" : goto reject-chain' in kubeproxy_nft.ruleset(6, IP6_OF)


def test_the_nodeport_back_to_node_a_sends_every_nodes_nodeport_to_node_as_second_pod():
    # default/web-back: KUBE-NODEPORTS -> KUBE-EXT (masquerade mark) -> KUBE-SVC -> KUBE-SEP DNAT to node-a's 172.17.25.66,
    # the nft table's service-nodeports map the same (tests/e2e/test_nodeport_hairpin_lab.py)
    text, chains = kubeproxy.rules()
    ext, svc, sep = (kubeproxy.ext_chain("default/web-back:https"), kubeproxy.svc_chain("default/web-back:https"),
                     kubeproxy.sep_chain("default/web-back:https", "172.17.25.66:443"))
    assert (ext, svc, sep) == ("KUBE-EXT-D6MBUFHWTJ4572GB", "KUBE-SVC-D6MBUFHWTJ4572GB", "KUBE-SEP-VZFNCAGBZ4JGSTKT")
    lines = text.splitlines()
    for line in ['-A KUBE-NODEPORTS -p tcp -m comment --comment "default/web-back:https" -m tcp --dport 30445 -j %s' % ext,
                 '-A %s -m comment --comment "masquerade traffic for default/web-back:https external destinations" '
                 '-j KUBE-MARK-MASQ' % ext, "-A %s -j %s" % (ext, svc),
                 '-A %s -m comment --comment "default/web-back:https -> 172.17.25.66:443" -j %s' % (svc, sep),
                 '-A %s -p tcp -m comment --comment "default/web-back:https" -m tcp -j DNAT --to-destination 172.17.25.66:443' % sep]:
        assert line in lines
    assert {ext, svc, sep} <= set(chains)
    nft = kubeproxy_nft.ruleset()
    assert "tcp . 30445 : goto external-45C3SDCL-default/web-back/tcp/https" in nft
    assert "numgen random mod 1 vmap { 0 : goto endpoint-TXZAPOJ4-default/web-back/tcp/https__172.17.25.66/443 }" in nft
    # a dual-stack lab: node-a's second pod has an IPv6 address, the Service an IPv6 endpoint
    back = next(s for s in kubeproxy.services(IP6_OF) if s["name"] == "default/web-back")
    assert (back["cluster_ip6"], back["endpoints6"]) == ("fd00:10:96::46", ["[fd00:10:244::42]:443"])
