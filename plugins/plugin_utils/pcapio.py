# -*- coding: utf-8 -*-
# Copyright: hoptrace contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Capture files: read pcap/pcapng records fast, write one merged pcapng.

dpkt validates every file's header (pcap magic, pcapng section and interface
blocks); the records are then walked here in bulk, straight from 1 MiB chunks
with ``struct.unpack_from``. dpkt's own iterators build one header object per
record (and a ``Decimal`` per timestamp for nanosecond files), which costs more
than the whole analysis budget: see docs/dependencies.md for the figures.
"""

from __future__ import annotations

import heapq
import struct

try:
    import dpkt
    import dpkt.pcap
    import dpkt.pcapng
    HAS_DPKT = True
    DPKT_IMPORT_ERROR = None
except ImportError as exc:  # pragma: no cover - exercised by the missing-library check
    HAS_DPKT = False
    DPKT_IMPORT_ERROR = exc

CHUNK = 1 << 20

LINKTYPE_NULL = 0
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
LINKTYPE_RAW_OLD = 12        # DLT_RAW as some libpcaps write it (tunl0 on older systems)
LINKTYPE_RAW_BSD = 14
LINKTYPE_LOOP = 108
LINKTYPE_LINUX_SLL = 113
LINKTYPE_LINUX_SLL2 = 276

_PCAP_MAGICS = {
    b"\xd4\xc3\xb2\xa1": ("<", 1000),        # little-endian, microseconds
    b"\xa1\xb2\xc3\xd4": (">", 1000),
    b"\x4d\x3c\xb2\xa1": ("<", 1),           # little-endian, nanoseconds
    b"\xa1\xb2\x3c\x4d": (">", 1),
}
_PCAPNG_SHB = b"\x0a\x0d\x0d\x0a"
_BT_IDB, _BT_SPB, _BT_EPB, _BT_PB = 1, 3, 6, 2
_NATIVE_REC = struct.Struct("<IIII")


class CaptureError(Exception):
    """A capture file that cannot be read at all (not pcap/pcapng, empty, unreadable)."""


def require_dpkt():
    """Raise a clear error when dpkt is missing on the controller."""
    if not HAS_DPKT:
        raise CaptureError(
            "reading captures needs the Python library dpkt on the controller: "
            "install dpkt (pip install 'dpkt>=1.9.8') in the Python that runs ansible (%s)" % DPKT_IMPORT_ERROR)


class Capture(object):
    """One capture file, opened and validated; iterate ``records()`` once.

    After iteration the counters say what was read: ``packets``, ``cut`` (records
    shorter on disk than on the wire: snaplen), ``truncated_tail`` (the file ends
    inside a record: the capture was copied while tcpdump was writing, or cut).
    """

    def __init__(self, path):
        require_dpkt()
        self.path = path
        self.packets = 0
        self.cut = 0
        self.truncated_tail = False
        self.interfaces = []          # [{linktype, snaplen, tsmult, name}]
        with open(path, "rb") as f:
            head = f.read(4)
            if not head:
                raise CaptureError("%s: empty file (tcpdump wrote no header)" % path)
            f.seek(0)
            try:
                if head == _PCAPNG_SHB:
                    rd = dpkt.pcapng.Reader(f)
                    self.format = "pcapng"
                    self.snaplen = rd.snaplen
                else:
                    rd = dpkt.pcap.Reader(f)
                    self.format = "pcap"
                    self.snaplen = rd.snaplen
                    if head not in _PCAP_MAGICS:
                        raise CaptureError("%s: unsupported pcap variant (magic %s)" % (path, head.hex()))
                    self._endian, mult = _PCAP_MAGICS[head]
                    self.interfaces.append({"linktype": rd.datalink(), "snaplen": rd.snaplen, "tsmult": mult, "name": None})
            except (ValueError, dpkt.NeedData, dpkt.UnpackError, struct.error) as exc:
                raise CaptureError("%s: not a pcap or pcapng file (%s)" % (path, exc))

    @property
    def linktype(self):
        return self.interfaces[0]["linktype"] if self.interfaces else None

    @property
    def nanosecond(self):
        return bool(self.interfaces) and self.interfaces[0]["tsmult"] == 1

    def chunks(self):
        """Yield ``(buf, linktype, record_unpack, tsmult)`` chunks of pcap-format records.

        The fast way through a file: walk records in ``buf`` yourself (16-byte header
        ``sec, frac, caplen, origlen`` via ``record_unpack``; timestamp in ns is
        ``sec * 1000000000 + frac * tsmult``). A pcap file comes in raw 1 MiB reads, so the
        last record of a chunk may continue in the next one: keep the unread tail and
        prepend it to the next chunk (see ``records()``). pcapng files are converted to
        such records (nanoseconds), one chunk per run of packets from one interface,
        always complete. Call ``finish(tail)`` with what is left unread at the end.
        """
        if self.format == "pcap":
            unpack = struct.Struct(self._endian + "IIII").unpack_from
            lt, mult = self.interfaces[0]["linktype"], self.interfaces[0]["tsmult"]
            with open(self.path, "rb") as f:
                f.seek(24)
                while True:
                    data = f.read(CHUNK)
                    if not data:
                        return
                    yield data, lt, unpack, mult
        else:
            unpack = _NATIVE_REC.unpack_from
            pack = _NATIVE_REC.pack
            out, cur, size = [], None, 0
            for ts, incl, orig, block, start, ifidx in self._pcapng_records():
                if ifidx != cur or size > CHUNK:
                    if out:
                        yield b"".join(out), self.interfaces[cur]["linktype"], unpack, 1
                    out, cur, size = [], ifidx, 0
                sec, ns = divmod(ts, 1000000000)
                out.append(pack(sec, ns, incl, orig))
                out.append(block[start:start + incl])
                size += 16 + incl
            if out:
                yield b"".join(out), self.interfaces[cur]["linktype"], unpack, 1

    def finish(self, tail, packets, cut):
        """Record what a chunk walker found: unread tail bytes mean a record cut by EOF."""
        if tail:
            self.truncated_tail = True
        if self.format == "pcap":
            self.packets, self.cut = packets, cut

    def records(self):
        """Yield ``(ts_ns, caplen, origlen, buf, offset, linktype)`` per record.

        ``buf[offset:offset + caplen]`` is the packet; ``buf`` is a shared chunk, so
        never read past ``caplen``. Convenient, slower than walking ``chunks()``.
        """
        tail = b""
        packets = cut = 0
        for data, lt, unpack, mult in self.chunks():
            buf = tail + data if tail else data
            end = len(buf)
            off = 0
            while off + 16 <= end:
                sec, frac, incl, orig = unpack(buf, off)
                start = off + 16
                if start + incl > end:
                    break
                packets += 1
                if incl < orig:
                    cut += 1
                yield sec * 1000000000 + frac * mult, incl, orig, buf, start, lt
                off = start + incl
            tail = buf[off:]
        self.finish(tail, packets, cut)

    def _pcapng_records(self):
        with open(self.path, "rb") as f:
            data_iter = _pcapng_blocks(f)
            le = "<"
            for btype, block in data_iter:
                if btype == "truncated":
                    self.truncated_tail = True
                    break
                if btype == 0x0A0D0D0A:
                    le = "<" if block[8:12] == b"\x4d\x3c\x2b\x1a" else ">"
                    self.interfaces = []  # a new section restarts interface numbering
                    continue
                if btype == _BT_IDB:
                    self.interfaces.append(_parse_idb(block, le))
                    continue
                if btype == _BT_EPB:
                    ifidx, tsh, tsl, incl, orig = struct.unpack_from(le + "IIIII", block, 8)
                    start = 28
                elif btype == _BT_SPB:
                    (orig,) = struct.unpack_from(le + "I", block, 8)
                    ifidx, tsh, tsl = 0, 0, 0
                    incl = min(orig, len(block) - 16)
                    start = 12
                elif btype == _BT_PB:
                    ifidx, _drops, tsh, tsl, incl, orig = struct.unpack_from(le + "HHIIII", block, 8)
                    start = 28
                else:
                    continue
                if ifidx >= len(self.interfaces) or start + incl > len(block):
                    self.truncated_tail = True
                    break
                iface = self.interfaces[ifidx]
                raw = (tsh << 32) | tsl
                self.packets += 1
                if incl < orig:
                    self.cut += 1
                yield raw * iface["tsmult"] // iface["tsdiv"] + iface["tsoff"], incl, orig, block, start, ifidx


def _pcapng_blocks(f):
    """Yield (block_type, block_bytes) for each pcapng block, ('truncated', b'') at a cut end."""
    le = "<"
    while True:
        head = f.read(8)
        if not head:
            return
        if len(head) < 8:
            yield "truncated", b""
            return
        if head[:4] == _PCAPNG_SHB:
            bom = f.read(4)
            le = "<" if bom == b"\x4d\x3c\x2b\x1a" else ">"
            (blen,) = struct.unpack(le + "I", head[4:])
            rest = f.read(blen - 12) if blen >= 12 else b""
            block = head + bom + rest
        else:
            btype, blen = struct.unpack(le + "II", head)
            block = head + f.read(blen - 8) if blen >= 12 else head
        if len(block) < 12 or len(block) < struct.unpack_from(le + "I", block, 4)[0]:
            yield "truncated", b""
            return
        yield struct.unpack_from(le + "I", block, 0)[0], block


def _parse_idb(block, le):
    cls = dpkt.pcapng.InterfaceDescriptionBlockLE if le == "<" else dpkt.pcapng.InterfaceDescriptionBlock
    idb = cls(block)
    iface = {"linktype": idb.linktype, "snaplen": idb.snaplen, "tsmult": 1000, "tsdiv": 1, "tsoff": 0, "name": None}
    for opt in idb.opts:
        if opt.code == 9 and opt.data:   # if_tsresol
            val = opt.data[0]
            if val & 0x80:
                iface["tsmult"], iface["tsdiv"] = 1000000000, 1 << (val & 0x7F)
            else:
                exp = val & 0x7F
                if exp <= 9:
                    iface["tsmult"], iface["tsdiv"] = 10 ** (9 - exp), 1
                else:
                    iface["tsmult"], iface["tsdiv"] = 1, 10 ** (exp - 9)
        elif opt.code == 14 and len(opt.data) == 8:   # if_tsoffset, seconds
            iface["tsoff"] = struct.unpack(le + "q", opt.data)[0] * 1000000000
        elif opt.code == 2:
            iface["name"] = opt.data.rstrip(b"\0").decode("utf-8", "replace")
    return iface


# --------------------------------------------------------------------------- writing

def _opt(code, value):
    pad = (4 - len(value) % 4) % 4
    return struct.pack("<HH", code, len(value)) + value + b"\0" * pad


def _block(btype, body):
    n = 12 + len(body)
    return struct.pack("<II", btype, n) + body + struct.pack("<I", n)


def write_merged_pcapng(path, sources, application="hoptrace"):
    """Write one pcapng with one interface per source, packets in time order.

    ``sources``: list of ``(name, path)``, e.g. ``("node-b/tunl0", "/run/node-b_tunl0.pcap")``.
    Each source becomes one interface block named ``name`` (``if_name``) with the
    source's link type (a pcapng source with several link types gets ``name:LINKTYPE``
    interfaces), nanosecond timestamps (``if_tsresol`` 9). Timestamps are written as
    captured (node clocks). Returns ``{"packets": n, "interfaces": [names], "skipped": [...]}``;
    unreadable sources are skipped and listed.
    """
    require_dpkt()
    opened, names, skipped = [], [], []
    for name, src in sources:
        try:
            cap = Capture(src)
            if cap.format == "pcapng":
                linktypes = sorted({lt for _ts, _i, _o, _b, _s, lt in cap.records()})
                cap = Capture(src)
            else:
                linktypes = [cap.linktype]
        except (CaptureError, OSError) as exc:
            skipped.append("%s: %s" % (name, exc))
            continue
        opened.append((name, cap, linktypes))
    streams = []
    with open(path, "wb") as out:
        shb_opts = _opt(4, application.encode()) + _opt(0, b"")
        out.write(_block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1) + shb_opts))
        for ci, (name, cap, linktypes) in enumerate(opened):
            mapping = {}
            for lt in linktypes:
                label = name if len(linktypes) == 1 else "%s:%d" % (name, lt)
                opts = _opt(2, label.encode()) + _opt(9, b"\x09") + _opt(0, b"")
                out.write(_block(_BT_IDB, struct.pack("<HHI", lt, 0, cap.snaplen or 262144) + opts))
                mapping[lt] = len(names)
                names.append(label)
            streams.append(_tagged(cap.records(), mapping, ci))
        count = 0
        pack = struct.Struct("<IIIIIII").pack
        trailer = struct.Struct("<I").pack
        write = out.write
        for ts, _ci, incl, orig, data, ifid in heapq.merge(*streams):
            pad = (4 - incl % 4) % 4
            n = 32 + incl + pad
            write(pack(_BT_EPB, n, ifid, ts >> 32, ts & 0xFFFFFFFF, incl, orig))
            write(data)
            write(b"\0" * pad + trailer(n))
            count += 1
    return {"packets": count, "interfaces": names, "skipped": skipped}


def _tagged(gen, mapping, ci):
    for ts, incl, orig, buf, off, lt in gen:
        yield ts, ci, incl, orig, buf[off:off + incl], mapping.get(lt, 0)
