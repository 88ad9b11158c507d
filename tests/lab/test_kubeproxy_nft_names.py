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
    assert "numgen random mod 2 vmap { 0 : goto endpoint-YC5AT2E7-default/web/tcp/https__172.17.25.66/443, " \
           "1 : goto endpoint-3SRHVVVD-default/web/tcp/https__172.17.25.193/443 }" in text
    # no iptables kube-proxy chain in this mode
    assert "KUBE-" not in text
