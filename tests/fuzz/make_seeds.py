#!/usr/bin/env python3
"""Writes the seed corpora of tests/fuzz/ (tests/fuzz/corpus/<target>/).

The seeds follow the unit tests' vectors: the golden wire encodings are read
out of tests/unit/test_wire.c, the others restate the tables of
test_config.c, test_virtq.c, test_vu_msg.c, test_vu_dev.c (QEMU 7.2's
set-up sequence and the hostile cases), test_avtp.c (the golden tsn://
frames, made again here from docs/protocol.md section 11), test_qdisc.c
(RTM_GETQDISC dumps, in host byte order) and test_ptpmgmt.c (ptp4l's
management datagrams, read out of it as test_wire.c's frames are) in each
harness's input format, which is described at the top of each fuzz_*.c.
Seeds are small (a few hundred bytes); run this again after changing a
harness's input format.

Usage: tests/fuzz/make_seeds.py [OUTDIR]   (default: tests/fuzz/corpus)
"""
import os
import re
import shutil
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(os.path.dirname(HERE))


def u8(v):
    return struct.pack("<B", v & 0xFF)


def u16(v):
    return struct.pack("<H", v & 0xFFFF)


def u32(v):
    return struct.pack("<I", v & 0xFFFFFFFF)


def u64(v):
    return struct.pack("<Q", v & 0xFFFFFFFFFFFFFFFF)


# ---- fuzz_wire: the golden frames of test_wire.c, and a few refused ones ----------------------


def wire_seeds():
    text = open(os.path.join(SRC, "tests/unit/test_wire.c")).read()
    seeds = {}
    # Adjacent string literals of hex digits form one frame: "210000000101..." "0101...".
    for m in re.finditer(r'((?:"[0-9a-f]*"\s*)+)', text):
        hexs = "".join(re.findall(r'"([0-9a-f]*)"', m.group(1)))
        if len(hexs) < 24 or len(hexs) % 2:
            continue
        frame = bytes.fromhex(hexs)
        if struct.unpack_from("<I", frame)[0] != len(frame):
            continue
        seeds["golden-%02d-type%d" % (len(seeds), frame[5])] = frame
    if len(seeds) < 10:
        sys.exit("make_seeds: found only %d golden frames in test_wire.c" % len(seeds))
    hello = next(v for k, v in seeds.items() if k.endswith("type1"))
    seeds["bad-len-field"] = u32(0xFFFFFFFF) + hello[4:]
    seeds["bad-version"] = hello[:4] + b"\x02" + hello[5:]
    seeds["bad-type"] = hello[:5] + b"\x63" + hello[6:]
    seeds["short"] = hello[:11]
    return seeds


# ---- fuzz_config: INI files of test_config.c; "export\nimport" spec pairs ---------------------

INI = {
    "good": "; vbridged configuration\n# comments both ways\n\n[global]\nnode = ecu-a\n"
    "  listen = tcp://[::]:7800\n\tlisten=tcp://0.0.0.0:7801\n"
    "export = disk0=vhost-user:/run/qsd/disk0.sock,type=blk ; trailing\n"
    "export = rng0=vhost-user:/run/rng.sock,type=rng\n"
    "import = cam0=tcp://ecu-c:7800,socket=/run/cam0.sock\nruntime-dir = /run/vb\n"
    "pool-size = 8M\nmax-queue-size = 256\nmax-msg = 1M\ncontrol = /run/vb/ctl.sock\n"
    "allow-plaintext = yes\n",
    "tls": "[global]\nnode = ecu-b\nlisten = tls://[::]:7800\ntls-cert = /etc/vb/c.pem\n"
    "tls-key = /etc/vb/k.pem\ntls-ca = /etc/vb/ca.pem\n"
    "tls-pin = sha256//AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n"
    "export = d=vhost-user:/s,type=blk,allow=ecu-a:rig.lab-3,pool=1M\n",
    "crlf": "[global]\r\nnode = crlf\r\n",
    "no-final-newline": "[global]\nnode = last",
    "keys-before-section": "node = pre\nimport = d=tcp://[fe80::1%veth0]:7800\n",
    "unknown-section": "[global]\nnode = a\n\n[port eth0]\nx = 1\n",
    "section-without-bracket": "[global\nnode = a\n",
    "bad-value": "[global]\nmax-queue-size = 1000\n",
    "key-twice": "[global]\nnode = a\nnode = b\n",
    "syntax-error": "[global]\njunk\nnodes = a\n",
    "nul-byte": "[global]\nnode = a\0b\nmax-msg = 1M\n",
    "long-line": "[global]\nnode = a\ncontrol = /" + "0" * 250 + "\nmax-msg = 1M\n",
    "long-path": "[global]\nruntime-dir = /" + "r" * 100 + "\nimport = x=tcp://a:1\n",
}

SPECS = {
    "blk": ("disk0=vhost-user:/run/qsd/disk0.sock,type=blk", "disk0=tcp://ecu-a:7800"),
    "comma-path": ("d=vhost-user:/a,,b.sock,type=blk", "d=tcp://a:1,socket=/tmp/d.sock"),
    "options": ("d=vhost-user:/s,config-size=8,type=99,pool=64K", "d=tls://host.example:65535"),
    "allow": ("d=vhost-user:/x,allow=ecu-b:rig.lab-3", "d=tcp://[::ffff:10.0.0.1]:7800"),
    "v6-zone": ("d=vhost-user:rel.sock", "d=tcp://[fe80::1%veth0]:7800"),
    "bad": ("d=vhost-user:/s,type=blk,type=net", "d=tcp://[::1:7800"),
    "bad-port": ("d=vhost-user:/s,pool=2G", "d=tcp://a:99999999999999999999999"),
}


def config_seeds():
    seeds = {"ini-" + k: v.encode() for k, v in INI.items()}
    for k, (e, i) in SPECS.items():
        seeds["spec-" + k] = (e + "\n" + i).encode()
    return seeds


# ---- fuzz_vu_stream: records of fuzz_vu_stream.c ---------------------------------------------

GET_FEATURES, SET_FEATURES, SET_OWNER, RESET_OWNER, SET_MEM_TABLE = 1, 2, 3, 4, 5
SET_VRING_NUM, SET_VRING_ADDR, SET_VRING_BASE, GET_VRING_BASE = 8, 9, 10, 11
SET_VRING_KICK, SET_VRING_CALL, SET_VRING_ERR = 12, 13, 14
GET_PROTOCOL_FEATURES, SET_PROTOCOL_FEATURES, GET_QUEUE_NUM, SET_VRING_ENABLE = 15, 16, 17, 18
SET_BACKEND_REQ_FD, GET_CONFIG, SET_CONFIG, RESET_DEVICE = 21, 24, 25, 34
GET_MAX_MEM_SLOTS, ADD_MEM_REG, REM_MEM_REG = 36, 37, 38
VHOST_USER_BACKEND_CONFIG_CHANGE_MSG = 2

FEATURES = (1 << 1) | (1 << 6) | (1 << 9) | (1 << 28) | (1 << 29) | (1 << 30) | (1 << 32)
PROTOCOL = (1 << 0) | (1 << 3) | (1 << 5) | (1 << 9) | (1 << 13) | (1 << 15)

FK_MEMFD, FK_EVENTFD, FK_FILE, FK_SOCKET, FK_SAME, FK_FILL = range(6)

GPA, UADDR, QSIZE, PAGES = 0x100000, 0x7F0000000000, 8, 8
DESC, AVAIL, USED, BUF = 0x0000, 0x1000, 0x2000, 0x4000


def fd(kind, pages=0, fill=None):
    spec = u8(pages << 4 | kind)
    if kind == FK_FILL:
        off, data = fill
        spec += u16(off) + u8(len(data)) + data
    return spec


def msg(req, payload=b"", fds=(), need_reply=True, split=False):
    """A cooked message: request byte, valid flags, size from the payload."""
    n = len(fds)
    ctl = (0x20 if need_reply else 0) | (0x10 if split else 0)
    if n <= 2:
        ctl |= n << 6
        head = u8(ctl)
    else:
        head = u8(ctl | 0xC0) + u8(n)
    return head + b"".join(fds) + u8(req) + u16(len(payload)) + payload


def raw(hdr, payload=b"", fds=()):
    """A raw header (request, flags, size as given) and payload."""
    n = len(fds)
    ctl = 0x08 | (min(n, 3) << 6)
    head = u8(ctl) + (u8(n) if n > 2 else b"")
    return head + b"".join(fds) + hdr + u16(len(payload)) + payload


def kick(which=0):
    return u8(6) + u8(which)


def action(kind, hi, sel=0, extra=b""):
    """what % 5 == kind with what >> 4 == hi (see acts[] in fuzz_vu_stream.c)."""
    what = next(hi << 4 | lo for lo in range(16) if (hi << 4 | lo) % 5 == kind)
    return u8(7) + u8(what) + u8(sel) + extra


def truncate(pages, sel=0):
    return action(0, pages, sel)


def fill(off, data, sel=0):
    return action(1, 0, sel, u16(off) + u8(len(data)) + data)


def state(idx, num):
    return u32(idx) + u32(num)


def region(gpa, size, uaddr, off=0):
    return u64(gpa) + u64(size) + u64(uaddr) + u64(off)


def negotiate():
    return (
        msg(GET_FEATURES, need_reply=False)
        + msg(SET_FEATURES, u64(FEATURES))
        + msg(GET_PROTOCOL_FEATURES, need_reply=False)
        + msg(SET_PROTOCOL_FEATURES, u64(PROTOCOL))
        + msg(GET_QUEUE_NUM, need_reply=False)
        + msg(SET_OWNER)
        + msg(GET_MAX_MEM_SLOTS, need_reply=False)
    )


def guest_chain():
    """Descriptor 0: 64 writable bytes at BUF; avail: idx 1, ring[0] = 0."""
    return u64(GPA + BUF) + u32(64) + u16(2) + u16(0), u16(0) + u16(1) + u16(0)


def add_region(kind=FK_FILL, pages=PAGES, size=PAGES * 0x1000, off=0):
    desc, _ = guest_chain()
    spec = fd(kind, pages, (DESC, desc)) if kind == FK_FILL else fd(kind, pages)
    return msg(ADD_MEM_REG, u64(0) + region(GPA, size, UADDR, off), [spec])


def ring(q=0, num=QSIZE, addr=(DESC, AVAIL, USED)):
    d, a, u = (UADDR + x for x in addr)
    return (
        msg(SET_VRING_NUM, state(q, num))
        + msg(SET_VRING_BASE, state(q, 0))
        + msg(SET_VRING_ADDR, u32(q) + u32(0) + u64(d) + u64(u) + u64(a) + u64(0))
        + msg(SET_VRING_KICK, u64(q), [fd(FK_EVENTFD)])
        + msg(SET_VRING_CALL, u64(q), [fd(FK_EVENTFD)])
    )


def started():
    _, avail = guest_chain()
    return (
        negotiate()
        + add_region()
        + fill(AVAIL, avail)
        + ring()
        + msg(SET_VRING_ENABLE, state(0, 1))
    )


def mem_table(n, nfds, size=PAGES * 0x1000):
    regions = b"".join(region(GPA + i * 0x100000, size, UADDR + i * 0x100000) for i in range(n))
    return msg(SET_MEM_TABLE, u32(n) + u32(0) + regions, [fd(FK_MEMFD, PAGES)] * nfds)


def vu_stream_seeds():
    _, avail = guest_chain()
    legacy = FEATURES & ~(1 << 30)
    s = {
        "qemu72-start-kick": started() + kick(0),
        "qemu72-stop": started() + kick(0) + msg(GET_VRING_BASE, state(0, 0), need_reply=False),
        "split-header-payload": msg(SET_FEATURES, u64(FEATURES), split=True) + negotiate(),
        "legacy-set-mem-table": msg(SET_FEATURES, u64(legacy))
        + mem_table(1, 1)
        + ring(1)
        + kick(0),
        "size-ffffffff": raw(u32(SET_FEATURES) + u32(1) + u32(0xFFFFFFFF), u64(0)),
        "wrong-size": msg(SET_FEATURES, u32(FEATURES)),
        "version-2": raw(u32(GET_FEATURES) + u32(2) + u32(0)),
        "reply-bit": raw(u32(GET_FEATURES) + u32(5) + u32(0)),
        "unknown-request": msg(200),
        "fds-on-get-features": msg(GET_FEATURES, fds=[fd(FK_EVENTFD)] * 2) + msg(GET_FEATURES),
        "ctrunc-10-fds": msg(SET_OWNER, fds=[fd(FK_EVENTFD)] * 10),
        "kick-regular-file": negotiate() + msg(SET_VRING_KICK, u64(0), [fd(FK_FILE, 1)]),
        "kick-socket": negotiate() + msg(SET_VRING_CALL, u64(0), [fd(FK_SOCKET)]),
        "nofd-with-fd": negotiate() + msg(SET_VRING_KICK, u64(0x100), [fd(FK_EVENTFD)]),
        "vring-index-10000": negotiate() + msg(SET_VRING_CALL, u64(0x10000), [fd(FK_EVENTFD)]),
        "vring-index-ffffffff": negotiate() + msg(SET_VRING_NUM, state(0xFFFFFFFF, 8)),
        "vring-num-0": negotiate() + msg(SET_VRING_NUM, state(0, 0)),
        "vring-num-3": negotiate() + msg(SET_VRING_NUM, state(0, 3)),
        "vring-num-65536": negotiate() + msg(SET_VRING_NUM, state(0, 65536)),
        "mem-table-9": negotiate() + mem_table(8, 8) + msg(SET_MEM_TABLE, u32(9) + u32(0)),
        "mem-table-2-regions-1-fd": negotiate() + mem_table(2, 1),
        "mem-table-0": negotiate() + msg(SET_MEM_TABLE, u32(0) + u32(0), [fd(FK_MEMFD, 1)]),
        "region-wraps": negotiate()
        + msg(ADD_MEM_REG, u64(0) + region(2**64 - 0x1000, 0x2000, UADDR), [fd(FK_MEMFD, 2)]),
        "region-beyond-file": negotiate() + add_region(FK_MEMFD, 1, 0x8000),
        "region-offset-beyond-file": negotiate() + add_region(FK_MEMFD, 2, 0x1000, 0x1000 * 2),
        "regions-overlap": negotiate() + add_region() + add_region(),
        "memfd-truncated-kick": started() + truncate(0) + kick(0),
        "set-mem-table-truncated-kick": msg(SET_FEATURES, u64(legacy))
        + msg(SET_MEM_TABLE, u32(1) + u32(0) + region(GPA, PAGES * 0x1000, UADDR),
              [fd(FK_FILL, PAGES, (DESC, guest_chain()[0]))])
        + fill(AVAIL, avail)
        + ring(0)
        + truncate(0)
        + kick(0),
        "ring-outside-region": negotiate()
        + add_region()
        + ring(0, addr=(DESC, AVAIL, PAGES * 0x1000 - 8))
        + msg(SET_VRING_ENABLE, state(0, 1)),
        "ring-misaligned": negotiate() + add_region() + ring(0, addr=(DESC + 8, AVAIL, USED)),
        "rem-region-live-rings-kick": started()
        + msg(REM_MEM_REG, u64(0) + region(GPA, PAGES * 0x1000, UADDR))
        + kick(0),
        "set-mem-table-replaces": started() + mem_table(1, 1) + kick(0),
        "config": negotiate()
        + msg(GET_CONFIG, u32(0) + u32(16) + u32(0) + bytes(16), need_reply=False)
        + msg(SET_CONFIG, u32(4) + u32(4) + u32(0) + b"\x01\x02\x03\x04")
        + msg(GET_CONFIG, u32(250) + u32(16) + u32(0) + bytes(16), need_reply=False),
        "backend-channel": negotiate()
        + msg(SET_BACKEND_REQ_FD, fds=[fd(FK_SOCKET)])
        + action(3, 0)
        + action(2, 0, 0, bytes(32))
        + action(2, 1)
        + action(3, 0),
        "reset-device": started() + msg(RESET_DEVICE) + kick(0) + msg(RESET_OWNER),
        "owner-disconnects": started() + action(3, 2),
        "header-then-eof": raw(u32(GET_FEATURES) + u32(1) + u32(8), b"\x01\x02") + action(4, 0),
        "indirect-chain": negotiate()
        + add_region(FK_FILL, PAGES)
        + fill(DESC, u64(GPA + 0x3000) + u32(32) + u16(4) + u16(0))
        + fill(0x3000, u64(GPA + BUF) + u32(16) + u16(1) + u16(1)
               + u64(GPA + BUF + 0x100) + u32(16) + u16(2) + u16(0))
        + fill(AVAIL, avail)
        + ring()
        + msg(SET_VRING_ENABLE, state(0, 1))
        + kick(0),
        "avail-jump": started() + fill(AVAIL, u16(0) + u16(QSIZE + 1)) + kick(0),
    }
    return s


# ---- fuzz_vu_front: records of fuzz_vu_front.c (we are the frontend, the input the backend) ----

(F_GET_FEATURES, F_SET_FEATURES, F_GET_PF, F_SET_PF, F_SET_OWNER, F_RESET_OWNER, F_GET_QUEUE_NUM,
 F_SET_MEM_TABLE, F_SET_VRING_NUM, F_SET_VRING_ADDR, F_SET_VRING_BASE, F_GET_VRING_BASE,
 F_SET_VRING_KICK, F_SET_VRING_CALL, F_SET_VRING_ENABLE, F_GET_CONFIG, F_SET_CONFIG, F_OPEN_CHAN,
 F_MAIN, F_CHAN, F_EOF, F_CHAN_EOF) = range(22)
M_HONEST, M_ACKVAL, M_NONE, M_MUTATE, M_EOF, M_CUT, M_TWICE, M_FDS = range(8)
FD_EVENTFD, FD_MEMFD, FD_FILE, FD_SOCKET = range(4)
BLK_FEATURES = (1 << 1) | (1 << 6) | (1 << 9) | (1 << 28) | (1 << 29) | (1 << 30) | (1 << 32)
# What qemu-storage-daemon offers for a blk export; the exporter keeps MQ|REPLY_ACK|BACKEND_REQ|CONFIG.
BLK_PF_OFFER = (1 << 0) | (1 << 3) | (1 << 5) | (1 << 9) | (1 << 12) | (1 << 13) | (1 << 15)
BLK_PF = (1 << 0) | (1 << 3) | (1 << 5) | (1 << 9)
BLK_CONFIG = u64(2 * 1024 * 1024) + u32(0) + u32(128) + bytes(52)  # capacity, size_max, seg_max, ...


def call(what, args=b"", value=b"", mode=M_HONEST, answer=b""):
    """A call record: op, arguments, the value of the reply, the mode's own fields."""
    return u8(mode << 5 | what) + args + value + answer


def front_bytes(what, hdr_or_req, payload=b"", fds=(), raw=False, need_reply=False, split=False):
    n = len(fds)
    ctl = (1 if raw else 0) | (2 if need_reply else 0) | (4 if split else 0)
    head = u8(ctl | min(n, 3) << 6) + (u8(n) if n > 2 else b"")
    msg = hdr_or_req if raw else u8(hdr_or_req)
    return u8(what) + head + b"".join(u8(k) for k in fds) + msg + u16(len(payload)) + payload


def front_setup():
    """The exporter's set-up toward a blk backend that offers REPLY_ACK: every set-request acked."""
    return (
        call(F_GET_FEATURES, value=u64(BLK_FEATURES))
        + call(F_GET_PF, value=u64(BLK_PF_OFFER))
        + call(F_SET_PF, u64(BLK_PF))
        + call(F_SET_OWNER)
        + call(F_GET_QUEUE_NUM, value=u64(1))
        + call(F_GET_CONFIG, u8(0) + u16(len(BLK_CONFIG)), BLK_CONFIG)
        + call(F_OPEN_CHAN)
    )


def front_queue(q=0):
    return (
        call(F_SET_FEATURES, u64(BLK_FEATURES))
        + call(F_SET_MEM_TABLE, u8(1))
        + call(F_SET_VRING_NUM, u8(q) + u16(256))
        + call(F_SET_VRING_BASE, u8(q) + u16(0))
        + call(F_SET_VRING_ADDR, u8(q))
        + call(F_SET_VRING_KICK, u8(q) + u8(0))
        + call(F_SET_VRING_CALL, u8(q) + u8(0))
        + call(F_SET_VRING_ENABLE, u8(q) + u8(1))
    )


def vu_front_seeds():
    cfg_change = front_bytes(F_CHAN, VHOST_USER_BACKEND_CONFIG_CHANGE_MSG, need_reply=True)
    setup = front_setup()
    get = call(F_GET_FEATURES, value=u64(BLK_FEATURES))
    s = {
        "blk-honest": u8(0)
        + setup
        + front_queue(0)
        + cfg_change
        + call(F_GET_CONFIG, u8(0) + u16(len(BLK_CONFIG)), BLK_CONFIG)
        + call(F_GET_VRING_BASE, u8(0), u32(17))
        + call(F_SET_CONFIG, u8(0) + u16(8))
        + call(F_RESET_OWNER),
        "blk-honest-slow-waits": u8(1) + setup + front_queue(0) + call(F_GET_VRING_BASE, u8(0), u32(3)),
        "no-reply-ack": u8(0)
        + call(F_GET_FEATURES, value=u64(BLK_FEATURES))
        + call(F_SET_PF, u64(1 << 9))
        + call(F_SET_OWNER)
        + front_queue(0)
        + call(F_GET_VRING_BASE, u8(0), u32(0)),
        "ack-refused": u8(0) + setup + call(F_SET_FEATURES, u64(1), u64(1), M_ACKVAL) + get,
        "config-refused": u8(0)
        + setup
        + call(F_GET_CONFIG, u8(0) + u16(8), bytes(8), M_MUTATE, u8(0) + u8(0) + u8(0xEC) + u8(0))
        + get,
        # Reply without REPLY flag, wrong code, wrong size, extra fds, an fd on the payload.
        "no-reply-flag": u8(0) + call(F_GET_FEATURES, value=u64(1), mode=M_MUTATE,
                                      answer=u8(0) + u8(4) + u8(0) + u8(0)) + get,
        "wrong-code": u8(0) + call(F_GET_FEATURES, value=u64(1), mode=M_MUTATE,
                                   answer=u8(14) + u8(0) + u8(0) + u8(0)) + get,
        "wrong-size": u8(0) + call(F_GET_FEATURES, value=u64(1), mode=M_MUTATE,
                                   answer=u8(0) + u8(0) + u8(0xFC) + u8(0)) + get,
        "wrong-size-ack": u8(0) + setup + call(F_SET_OWNER, mode=M_MUTATE,
                                               answer=u8(0) + u8(0) + u8(8) + u8(0)) + get,
        "extra-fds": u8(0) + call(F_GET_FEATURES, value=u64(1), mode=M_MUTATE,
                                  answer=u8(0) * 3 + u8(3) + u8(FD_EVENTFD) + u8(FD_MEMFD)
                                  + u8(FD_SOCKET)) + get,
        "ctrunc-10-fds": u8(0) + call(F_GET_FEATURES, value=u64(1), mode=M_MUTATE,
                                      answer=u8(0) * 3 + u8(10) + bytes(range(10))) + get,
        "fd-on-payload": u8(0) + call(F_GET_QUEUE_NUM, value=u64(1), mode=M_FDS,
                                      answer=u8(1) + u8(FD_FILE)) + get,
        "size-ffffffff": u8(0)
        + front_bytes(F_MAIN, u32(1) + u32(5) + u32(0xFFFFFFFF), u64(0), raw=True)
        + get,
        "eof-mid-header": u8(0) + call(F_GET_FEATURES, value=u64(1), mode=M_CUT, answer=u8(7)) + get,
        "eof-after-reply": u8(0) + call(F_GET_FEATURES, value=u64(1), mode=M_EOF) + get,
        "missing-reply": u8(1) + call(F_GET_PF, mode=M_NONE) + get,
        "stale-reply": u8(0) + setup + call(F_SET_VRING_NUM, u8(0) + u16(8), mode=M_TWICE) + get,
        "vring-base-17-bits": u8(0) + setup + call(F_GET_VRING_BASE, u8(0), u32(0x10000)) + get,
        "vring-base-other-ring": u8(0)
        + front_bytes(F_MAIN, u32(GET_VRING_BASE) + u32(5) + u32(8), state(1, 0), raw=True)
        + call(F_GET_VRING_BASE, u8(0), u32(0), M_NONE)
        + get,
        "refused-arguments": u8(0)
        + call(F_SET_MEM_TABLE, u8(0))
        + call(F_SET_MEM_TABLE, u8(9))
        + call(F_SET_VRING_KICK, u8(0) + u8(2))
        + call(F_GET_CONFIG, u8(250) + u16(8))
        + get,
        "chan-bad-messages": u8(0)
        + setup
        + front_bytes(F_CHAN, VHOST_USER_BACKEND_CONFIG_CHANGE_MSG, u64(0))
        + front_bytes(F_CHAN, VHOST_USER_BACKEND_CONFIG_CHANGE_MSG, fds=[FD_EVENTFD])
        + get,
        "chan-unknown-request": u8(0) + setup + front_bytes(F_CHAN, 9, bytes(16)) + get,
        "chan-eof": u8(0) + setup + cfg_change + u8(F_CHAN_EOF) + get,
        "chan-split-fds": u8(0)
        + setup
        + front_bytes(F_CHAN, u32(2) + u32(1) + u32(8), u64(0), [FD_MEMFD], raw=True, split=True)
        + get,
        "junk-before-reply": u8(0)
        + front_bytes(F_MAIN, GET_PROTOCOL_FEATURES, u64(0))
        + call(F_GET_FEATURES, value=u64(1)),
        "eof-then-calls": u8(0) + u8(F_EOF) + get + call(F_SET_OWNER) + call(F_OPEN_CHAN),
    }
    return s


# ---- fuzz_virtq_dev: operations of fuzz_virtq_dev.c ----------------------------------------

D_POP, D_PUSH, D_WALK, D_DESC, D_TABLE, D_AVAIL, D_RAW, D_NOTIFY, D_RESTART = 0, 2, 3, 4, 6, 7, 9, 10, 11
ANCHORS = [0x2400, 0x3FF0, 0x4000, 0x7FE0, 0x8000, 0xC000, 0x3000, 0x5000]
N, W, I = 1, 2, 4


def d_hdr(log2=3, event_idx=False, layout=0, base=0):
    return u8(log2 | (0x10 if event_idx else 0)) + u8(layout) + u16(base)


def d_desc(idx, at, off, length, flags, nxt=0, table=None, big=False):
    op = D_TABLE if table is not None else D_DESC
    at |= 0x10 if big else 0
    return (u8(op) + u8(table or 0) + u8(idx) + u8(at) + u16(off) + u16(length) + u8(flags)
            + u8(nxt))


def d_avail(head, step=0):
    return u8(D_AVAIL) + u8(head) + u8(step)


POP_PUSH = u8(D_POP) + u8(D_PUSH) + u8(0) + u32(16)


def virtq_dev_seeds():
    b = 7  # anchor 0x5000, in region B
    s = {
        "simple-chain": d_hdr() + d_desc(0, b, 0, 100, N, 1) + d_desc(1, b, 0x1000, 200, W)
        + d_avail(0) + POP_PUSH,
        "across-a-b": d_hdr() + d_desc(0, 1, 0, 0x100, 0) + d_avail(0) + POP_PUSH,
        "over-the-hole": d_hdr() + d_desc(0, 3, 0, 0x100, W) + d_avail(0) + u8(D_POP),
        "head-ge-num": d_hdr() + d_desc(0, b, 0, 1, 0) + d_avail(8) + u8(D_POP),
        "next-cycle": d_hdr() + d_desc(0, b, 0, 1, N, 1) + d_desc(1, b, 0, 1, N, 0) + d_avail(0)
        + u8(D_POP),
        "chain-of-num": d_hdr() + b"".join(d_desc(i, b, 16 * i, 16, (W if i >= 4 else 0) | (N if i < 7 else 0), i + 1) for i in range(8))
        + d_avail(0) + POP_PUSH,
        "indirect": d_hdr() + d_desc(0, 0, 0, 32, I)
        + d_desc(0, b, 0, 4, N, 1, table=0) + d_desc(1, b, 0x100, 8, W, 0, table=0)
        + d_avail(0) + POP_PUSH + u8(D_WALK) + u16(0),
        "indirect-across-a-b": d_hdr() + d_desc(0, 1, 0, 32, I)
        + d_desc(0, b, 0, 4, N, 1, table=1) + d_desc(1, b, 0x100, 8, W, 0, table=1)
        + d_avail(0) + POP_PUSH,
        "indirect-in-indirect": d_hdr() + d_desc(0, 0, 0, 32, I) + d_desc(0, 0, 0x100, 16, I, table=0)
        + d_avail(0) + u8(D_POP),
        "len-ffffffff": d_hdr() + d_desc(0, b, 0, 0, 0, big=True) + d_avail(0) + u8(D_POP),
        "writable-then-readable": d_hdr() + d_desc(0, b, 0, 4, W | N, 1) + d_desc(1, b, 16, 4, 0)
        + d_avail(0) + u8(D_POP),
        "avail-jump": d_hdr() + d_desc(0, b, 0, 4, 0) + d_avail(0, 0xFF) + u8(D_POP),
        "event-idx": d_hdr(3, True) + u8(D_NOTIFY) + u8(0x80) + d_desc(0, b, 0, 4, W) + d_avail(0)
        + POP_PUSH + u8(D_NOTIFY) + u8(1) + u8(D_NOTIFY) + u8(0) + u8(D_NOTIFY) + u8(2),
        "base-wrap": d_hdr(2, False, 1, 0xFFFF) + d_desc(0, b, 0, 4, W) + d_avail(0) + d_avail(0)
        + POP_PUSH + POP_PUSH + u8(D_RESTART) + u8(0),
        "rings-per-region": d_hdr(4, True, 2) + d_desc(3, 5, 0, 64, W) + d_avail(3) + POP_PUSH,
        "raw-scribble": d_hdr() + u8(D_RAW) + u8(0x09) + u16(2) + u8(1) + u8(0x20) + u8(D_POP),
        "anywhere": d_hdr(3, False, 0x80) + u64(0x7F0000001000) + u64(0x7F0000000FFF)
        + u64(0x7F0000002000),
    }
    return s


# ---- fuzz_virtq_drv: operations of fuzz_virtq_drv.c ----------------------------------------

V_ADD, V_KICK, V_GET, V_CB, V_USED, V_SCRIBBLE, V_DEVICE = 0, 2, 3, 5, 6, 7, 8


def v_hdr(log2=3, event_idx=False, indirect=False, imax=4):
    return u8(log2 | (0x10 if event_idx else 0) | (0x20 if indirect else 0)) + u8(imax)


def v_add(nrd, nwr, lens=None, flags=0):
    n = nrd + nwr
    lens = lens or [0x20 + i for i in range(n)]
    return u8(V_ADD) + u8(flags | nwr << 3 | nrd) + b"".join(u16(l) + u8(i) for i, l in enumerate(lens))


def v_used(id_, length, step=None, wide=False, slot=0):
    how = slot | (0x80 if wide else 0) | (0x40 if step is not None else 0)
    body = u8(V_USED) + u8(how) + (u32(id_) if wide else u8(id_)) + u32(length)
    return body + (u16(step) if step is not None else b"")


def virtq_drv_seeds():
    honest = v_add(1, 1) + v_add(2, 1) + u8(V_KICK) + u8(V_DEVICE) + u8(3) + u8(V_GET) + u8(V_GET)
    s = {
        "honest-plain": v_hdr() + honest,
        "honest-indirect": v_hdr(3, False, True) + honest,
        "honest-event-idx": v_hdr(3, True, True) + u8(V_CB) + u8(1) + honest + u8(V_CB) + u8(0),
        "good-used": v_hdr() + v_add(1, 0) + u8(V_KICK) + v_used(0, 5) + u8(V_GET),
        "id-eq-num": v_hdr() + v_add(1, 0) + u8(V_KICK) + v_used(8, 0) + u8(V_GET),
        "id-ffffffff": v_hdr() + v_add(1, 0) + u8(V_KICK) + v_used(0xFFFFFFFF, 0, wide=True)
        + u8(V_GET),
        "id-second-desc": v_hdr() + v_add(1, 1) + u8(V_KICK) + v_used(1, 0) + u8(V_GET),
        "duplicate": v_hdr() + v_add(0, 1) + v_add(0, 1) + u8(V_KICK) + v_used(0, 1)
        + v_used(0, 1) + u8(V_GET) + u8(V_GET),
        "used-jump": v_hdr() + v_add(1, 0) + u8(V_KICK) + v_used(0, 0, step=9) + u8(V_GET),
        "used-back": v_hdr() + v_add(1, 0) + u8(V_KICK) + v_used(0, 0, step=0xFFFF) + u8(V_GET),
        "add-errors": v_hdr() + v_add(0, 0) + v_add(1, 1, [0, 4]) + v_add(1, 0, [0xF], 0x80)
        + v_add(0, 0, None, 0x40),
        "full": v_hdr(2) + v_add(1, 1) + v_add(1, 1) + v_add(1, 0) + u8(V_KICK) + u8(V_DEVICE)
        + u8(3) + u8(V_GET) * 3 + v_add(2, 2),
        "scribble-desc": v_hdr() + v_add(1, 1) + u8(V_KICK) + u8(V_SCRIBBLE) + u32(0) + u8(15)
        + bytes(range(16)) + u8(V_DEVICE) + u8(0) + u8(V_GET),
        "indir-max-over-num": v_hdr(3, False, True, 16) + v_add(7, 1) + u8(V_KICK) + u8(V_DEVICE)
        + u8(0) + u8(V_GET),
    }
    return s

# ---- fuzz_tls: handshake flights made with Python's ssl module, and the test PKI's certificates --


def tls_seeds():
    import ssl

    pki = os.path.join(HERE, "pki")

    def pem(name):
        return os.path.join(pki, name)

    def chunk(b):
        return u16(len(b)) + b

    def first_flight(ctx, server_side=False, feed=b""):
        bin_, bout = ssl.MemoryBIO(), ssl.MemoryBIO()
        conn = ctx.wrap_bio(bin_, bout, server_side=server_side)
        bin_.write(feed)
        try:
            conn.do_handshake()
        except ssl.SSLWantReadError:
            pass
        return bout.read()

    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.check_hostname = False
    client.verify_mode = ssl.CERT_NONE
    client.minimum_version = ssl.TLSVersion.TLSv1_3
    client.load_cert_chain(pem("ecu-b.pem"), pem("ecu-b.key"))
    hello = first_flight(client)
    old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    old.check_hostname = False
    old.verify_mode = ssl.CERT_NONE
    old.maximum_version = ssl.TLSVersion.TLSv1_2
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.minimum_version = ssl.TLSVersion.TLSv1_3
    server.load_cert_chain(pem("ecu-a.pem"), pem("ecu-a.key"))
    server.verify_mode = ssl.CERT_REQUIRED
    server.load_verify_locations(pem("ca.pem"))
    seeds = {
        "raw-client-hello": b"\x00" + chunk(hello),
        "raw-client-hello-split": b"\x00" + chunk(hello[:5]) + chunk(hello[5:]),
        "raw-tls12-client-hello": b"\x00" + chunk(first_flight(old)),
        "raw-http": b"\x00" + chunk(b"GET / HTTP/1.1\r\nHost: ecu-a\r\n\r\n"),
        "raw-server-flight": b"\x01" + chunk(first_flight(server, True, hello)),
    }

    def der(name):
        return ssl.PEM_cert_to_DER_cert(open(pem(name)).read())

    # flags: 1 we are the server, 2 re-sign with the CA, 4 the peer's key, 8 pinned, 16 CA sent along
    for name, flags in (("ecu-b", 0x01), ("ecu-b", 0x00), ("ecu-b", 0x09), ("ecu-b", 0x11),
                        ("nosan", 0x07), ("old", 0x07), ("ecu-a", 0x07), ("ecu-a", 0x0F),
                        ("ca", 0x07), ("old", 0x01)):
        seeds["cert-%s-%02x" % (name, flags)] = b"\x02" + u8(flags) + der(name + ".pem")
    return seeds


# ---- fuzz_avtp: tsn:// frames (docs/protocol.md section 11), big-endian, as in test_avtp.c ---------

MAC_A = bytes.fromhex("02000000000a")
MAC_B = bytes.fromhex("02000000000b")


def be(fmt, *v):
    return struct.pack(">" + fmt, *v)


def avtp_eth(dst, src, tci=None):
    tag = b"" if tci is None else be("HH", 0x8100, tci)
    return dst + src + tag + be("H", 0x22F0)


def stream_id(mac, cls, chan):
    return int.from_bytes(mac, "big") << 16 | cls << 12 | (chan & 0xFFF)


def tscf(sid, acf, seq=0, tv=False, ts=0, tu=False):
    return be("BBBBQIIHH", 0x05, 0x80 | tv, seq, tu, sid, ts, 0, len(acf), 0) + acf


def ntscf(sid, acf, seq=0):
    return be("BBBBQ", 0x82, 0x80 | len(acf) >> 8, len(acf) & 0xFF, seq, sid) + acf


def acf(typ, body):
    body += b"\0" * (-(len(body) + 2) % 4)
    return be("H", typ << 9 | (len(body) + 2) // 4) + body


def seg(flags, cls, token, seq, data):
    return acf(0x78, be("BBIIHH", flags, cls, token, seq, len(data), 0) + data)


def ack(cls, token, cum, window, sack):
    return acf(0x79, be("BBIIIQ", 0, cls, token, cum, window, sack))


def ctl(op, token, my_token, max_seg=2028, window=64, isn=0, time=0, reason=b""):
    return acf(0x7A, be("BBIIHHIQI", op, 0, token, my_token, max_seg, window, isn, time,
                        len(reason)) + reason)


def pad60(frame):
    return frame + b"\0" * max(0, 60 - len(frame))


def avtp_seeds():
    a_audio, b_bulk = stream_id(MAC_A, 1, 3), stream_id(MAC_B, 3, 0xABC)
    a_ctl, b_ctl = stream_id(MAC_A, 0, 0), stream_id(MAC_B, 0, 0)
    eth_ab, eth_ba = avtp_eth(MAC_B, MAC_A), avtp_eth(MAC_A, MAC_B)
    seeds = {
        "seg": eth_ab + tscf(a_audio, seg(3, 1, 0x11223344, 0xFFFFFFFE, b"hello"), 7, True,
                             0x12345678),
        "seg2-tagged": avtp_eth(MAC_A, MAC_B, 0x4064) + tscf(
            b_bulk, seg(1, 3, 0xCAFEF00D, 0x100, bytes(range(1, 9))) +
            seg(2, 3, 0xCAFEF00D, 0x101, b"\x09"), 0xFF, tu=True),
        "ack-ping": eth_ab + ntscf(a_ctl, ack(0, 0x01020304, 0x1000, 0x40, 0x8000000000000005) +
                                   ctl(4, 0x01020304, 0x0A0B0C0D, isn=0x55AA55AA,
                                       time=0x0011223344556677), 0x10),
        "close-tagged": avtp_eth(MAC_A, MAC_B, 0x6005) + ntscf(
            b_ctl, ctl(3, 0x0A0B0C0D, 0x01020304, isn=0x12345678, reason=b"peer silent")),
        "ntscf-long": eth_ab + ntscf(a_ctl, b"".join(
            ack(c, 0x01020304, c * 0x40000000, 0x10 << c, (1 << (16 * c)) - 1) for c in range(4)) +
            ctl(5, 0x01020304, 0x0A0B0C0D, 0, 0, time=0x0011223344556677) +
            ctl(3, 0x01020304, 0x0A0B0C0D, reason=b"0123456789" * 10), 0x42),
        "open-padded": pad60(eth_ab + ntscf(a_ctl, ctl(1, 0, 0x01020304, window=256,
                                                       isn=0xFFFFFFF0))),
        "foreign": eth_ba + tscf(stream_id(MAC_B, 2, 1), acf(0x7F, b"") +
                                 seg(0, 2, 0x0A0B0C0D, 5, bytes.fromhex("deadbeef")) +
                                 acf(0x7B, bytes.fromhex("aabbccddeeff")), 0x80, True,
                                 0xFFFFFFFF, True),
        "acf-can": eth_ab + ntscf(a_ctl, acf(0x01, bytes(14) + b"\x01\x02") +
                                  ack(0, 1, 2, 3, 4)),
        "empty-tscf": pad60(eth_ab + tscf(a_audio, b"")),
        "32-segs": eth_ab + tscf(a_audio, seg(1, 1, 9, 0, b"x") + b"".join(
            seg(0, 1, 9, i, b"x") for i in range(1, 31)) + seg(2, 1, 9, 31, b"x")),
        "max-seg": eth_ba + tscf(stream_id(MAC_B, 3, 7), seg(3, 3, 1, 2, bytes(2028))),
    }
    seg1 = seeds["seg"]
    seeds["bad-33-segs"] = eth_ab + tscf(a_audio, b"".join(
        seg(0, 1, 9, i, b"x") for i in range(33)))
    seeds["bad-ethertype"] = seg1[:12] + be("H", 0x0800) + seg1[14:]
    seeds["bad-version"] = seg1[:15] + b"\x91" + seg1[16:]
    seeds["bad-class-mismatch"] = seg1[:41] + b"\x02" + seg1[42:]
    seeds["bad-runt"] = seg1[:37]
    for name, frame in seeds.items():
        if len(frame) > 4096:
            sys.exit("make_seeds: avtp seed %s is %d bytes" % (name, len(frame)))
    return seeds

# ---- fuzz_qdisc: RTM_GETQDISC dumps (host byte order), as test_qdisc.c builds them ---------------

RTM_NEWQDISC, NLMSG_DONE, NLM_F_MULTI = 36, 3, 2
TCA_KIND, TCA_OPTIONS, TCA_STATS, TCA_STATS2, TCA_HW_OFFLOAD = 1, 2, 3, 7, 12
TC_H_ROOT, TC_H_INGRESS, Q_ROOT = 0xFFFFFFFF, 0xFFFFFFF1, 0x01000000
CLOCK_TAI, CLOCK_MONOTONIC = 11, 1
IF_ME, IF_OTHER, NL_SEQ = 7, 4, 42


def ne(fmt, *v):
    return struct.pack("=" + fmt, *v)


def nla(typ, body):
    return ne("HH", 4 + len(body), typ) + body + b"\0" * (-len(body) % 4)


def nlmsg(typ, body, seq=NL_SEQ):
    return ne("IHHII", 16 + len(body), typ, NLM_F_MULTI, seq, 0) + body + b"\0" * (-len(body) % 4)


def qmsg(ifindex, handle, parent, kind, options=None):
    body = ne("BBHiIII", 0, 0, 0, ifindex, handle, parent, 2) + nla(TCA_KIND, kind + b"\0")
    if options is not None:
        body += nla(TCA_OPTIONS, options)
    # What the kernel adds and the parser skips: TCA_HW_OFFLOAD, TCA_STATS2 (nest), TCA_STATS.
    body += nla(TCA_HW_OFFLOAD, b"\0") + nla(TCA_STATS2, nla(1, ne("QI", 1234, 5)))
    return nlmsg(RTM_NEWQDISC, body + nla(TCA_STATS, bytes(36)))


def nl_done(err=0):
    return nlmsg(NLMSG_DONE, ne("i", err))


def mqprio_qopt(num_tc, prio_tc, count, offset):
    prio_tc = list(prio_tc) + [0] * (16 - len(prio_tc))
    count, offset = list(count) + [0] * (16 - len(count)), list(offset) + [0] * (16 - len(offset))
    return ne("B16BB16H16H", num_tc, *prio_tc, 0, *count, *offset)


MAP3 = mqprio_qopt(3, [1, 2, 2, 0] + [2] * 12, [1, 2, 1], [0, 1, 3])


def etf_opts(clockid=CLOCK_TAI, delta=300000, flags=2):
    return nla(1, ne("iiI", delta, clockid, flags))  # TCA_ETF_PARMS


def taprio_opts(qopt, clockid=CLOCK_TAI, flags=1):
    o = nla(1, qopt)  # TCA_TAPRIO_ATTR_PRIOMAP
    if clockid is not None:
        o += nla(5, ne("i", clockid))  # _SCHED_CLOCKID
    if flags:
        o += nla(10, ne("I", flags))  # _FLAGS
    entry = nla(1, nla(2, b"\x00") + nla(4, ne("I", 300000)))  # SCHED_ENTRY: CMD, INTERVAL
    return o + nla(3, ne("q", 10 ** 9)) + nla(2, entry)  # BASE_TIME, ENTRY_LIST


def children(kinds):
    out = b""
    for q in reversed(range(len(kinds))):  # the kernel's hash order, not by queue
        k = kinds[q]
        if k is None:
            continue
        opts = etf_opts(*k[1:]) if k[0] == b"etf" else None
        out += qmsg(IF_ME, 0x80010000 + (q << 16), Q_ROOT | (q + 1), k[0], opts)
    return out


def qdisc_input(dump, split=0xFFFF, ifindex=IF_ME):
    return ne("B", ifindex) + struct.pack("<H", split) + dump


def qdisc_seeds():
    other = qmsg(IF_OTHER, 0, TC_H_ROOT, b"pfifo_fast")
    tail = qmsg(IF_ME, 0xFFFF0000, TC_H_INGRESS, b"clsact") + nl_done()
    pf, etf, etf_d = (b"pfifo_fast",), (b"etf",), (b"etf", CLOCK_TAI, 300000, 1)
    mqprio = qmsg(IF_ME, Q_ROOT, TC_H_ROOT, b"mqprio", MAP3 + b"\0\0" + nla(1, ne("H", 1)))
    dumps = {
        "noqueue": other + qmsg(IF_ME, 0, TC_H_ROOT, b"noqueue") + tail,
        "mq-pfifo_fast": qmsg(IF_ME, Q_ROOT, TC_H_ROOT, b"mq") + children([pf] * 4) + tail,
        "mq-etf": qmsg(IF_ME, Q_ROOT, TC_H_ROOT, b"mq") + children([etf] * 4) + tail,
        "mqprio-etf": other + mqprio + children([etf, pf, pf, pf]) + tail,
        "mqprio-etf-deadline": mqprio + children([pf, etf_d, etf_d, pf]) + tail,
        "mqprio-no-child": mqprio + children([etf, pf, pf, None]) + tail,
        "taprio-assist": qmsg(IF_ME, Q_ROOT, TC_H_ROOT, b"taprio", taprio_opts(MAP3)) +
        children([etf] * 4) + tail,
        "taprio-no-assist": qmsg(IF_ME, Q_ROOT, TC_H_ROOT, b"taprio", taprio_opts(MAP3, flags=0)) +
        children([etf] * 4) + tail,
        "taprio-offload": qmsg(IF_ME, Q_ROOT, TC_H_ROOT, b"taprio",
                               taprio_opts(MAP3, None, 2)) + children([pf] * 4) + tail,
        "root-etf": qmsg(IF_ME, Q_ROOT, TC_H_ROOT, b"etf", etf_opts(flags=1)) + tail,
        "root-etf-monotonic": qmsg(IF_ME, Q_ROOT, TC_H_ROOT, b"etf", etf_opts(CLOCK_MONOTONIC)) +
        tail,
        "no-root": other + tail,
        "nlmsg-error": nlmsg(2, ne("i", -22) + bytes(16)),
        "done-error": other + nl_done(-90),
        "bad-kind": qmsg(IF_ME, 0, TC_H_ROOT, b"pfifo fast") + tail,
        "bad-mqprio-map": qmsg(IF_ME, Q_ROOT, TC_H_ROOT, b"mqprio",
                               mqprio_qopt(3, [3], [1], [0])) + tail,
        "bad-two-roots": qmsg(IF_ME, 0, TC_H_ROOT, b"noqueue") + qmsg(IF_ME, Q_ROOT, TC_H_ROOT,
                                                                      b"mq") + tail,
    }
    seeds = {name: qdisc_input(d) for name, d in dumps.items()}
    # Two datagrams: the end of the dump in its own, as the kernel may send it.
    d = dumps["mqprio-etf"]
    seeds["split-mqprio-etf"] = qdisc_input(d, len(d) - len(nl_done()))
    seeds["bad-cut"] = qdisc_input(d[:len(d) // 2 + 3])
    seeds["bad-after-done"] = qdisc_input(dumps["noqueue"] + qmsg(IF_ME, 0, Q_ROOT | 1, b"pfifo"))
    return seeds


# ---- fuzz_ptpmgmt: ptp4l's management datagrams, as captured in test_ptpmgmt.c -----------------


def ptpmgmt_seeds():
    text = open(os.path.join(SRC, "tests/unit/test_ptpmgmt.c")).read()
    seeds = {}
    # Adjacent string literals of hex digits and spaces form one datagram; keep those whose
    # messageLength (bytes 2-3, big-endian) is their size.
    for m in re.finditer(r'((?:"[0-9a-f ]*"\s*)+)', text):
        hexs = "".join(re.findall(r'"([0-9a-f ]*)"', m.group(1))).replace(" ", "")
        if len(hexs) < 96 or len(hexs) % 2:
            continue
        msg = bytes.fromhex(hexs)
        if struct.unpack_from(">H", msg, 2)[0] != len(msg):
            continue
        seeds["vec-%02d-%04x" % (len(seeds), struct.unpack_from(">H", msg, 52)[0])] = msg
    if len(seeds) < 14:
        sys.exit("make_seeds: found only %d ptp management messages in test_ptpmgmt.c" % len(seeds))
    err = next(v for k, v in seeds.items() if v[48:50] == b"\x00\x02")
    tp = next(v for k, v in seeds.items() if len(v) == 58 and v[52:54] == b"\x20\x03")

    def with_text(t):
        value = err[52:60] + bytes([len(t)]) + t + b"\0" * ((1 + len(t)) & 1)
        n = 52 + len(value)
        return err[:2] + struct.pack(">H", n) + err[4:50] + struct.pack(">H", len(value)) + value

    seeds["error-text-long"] = with_text(bytes(0x20 + i % 95 for i in range(255)))
    seeds["error-text-binary"] = with_text(b"bad\x01\x7f\xff\n ok!")
    seeds["bad-type"] = b"\x10" + tp[1:]
    seeds["bad-short"] = tp[:40]
    seeds["bad-tlv-length"] = tp[:50] + b"\x00\x08" + tp[52:]
    seeds["bad-tlv-type"] = tp[:48] + b"\x00\x03" + tp[50:]
    return seeds


TARGETS = {
    "fuzz_wire": wire_seeds,
    "fuzz_config": config_seeds,
    "fuzz_vu_stream": vu_stream_seeds,
    "fuzz_vu_front": vu_front_seeds,
    "fuzz_virtq_dev": virtq_dev_seeds,
    "fuzz_virtq_drv": virtq_drv_seeds,
    "fuzz_tls": tls_seeds,
    "fuzz_avtp": avtp_seeds,
    "fuzz_qdisc": qdisc_seeds,
    "fuzz_ptpmgmt": ptpmgmt_seeds,
}

# Targets whose seeds differ on every run.
RANDOM_TARGETS = {"fuzz_tls"}


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "corpus")
    for target, make in TARGETS.items():
        d = os.path.join(out, target)
        # A TLS hello is random: keep the committed flights unless asked to remake them.
        if target in RANDOM_TARGETS and os.path.isdir(d) and not os.environ.get("VB_SEEDS_REMAKE"):
            print("%-16s kept (random flights; VB_SEEDS_REMAKE=1 remakes them)" % target)
            continue
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        seeds = make()
        for name, data in seeds.items():
            if len(data) > 4096:
                sys.exit("make_seeds: %s/%s is %d bytes" % (target, name, len(data)))
            with open(os.path.join(d, name), "wb") as f:
                f.write(data)
        print("%-16s %3d seeds, %5d bytes" % (target, len(seeds), sum(map(len, seeds.values()))))


if __name__ == "__main__":
    main()
