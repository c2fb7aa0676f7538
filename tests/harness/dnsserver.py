"""A real DNS server on loopback, serving exactly the records a test gives it.

NAME
    dnsserver - run Debian's unbound as an authoritative-style test DNS
                server on 127.0.0.1, plus a tiny stdlib DNS client

SYNOPSIS
    from dnsserver import DnsServer, dns_query      # tests/harness on sys.path
    # or: from tests.harness.dnsserver import DnsServer, dns_query

    with DnsServer(workdir) as dns:
        dns.set_records([
            ("pass.test", "TXT", "v=spf1 ip4:192.0.2.1 -all"),
            ("pass.test", "MX", (10, "mx.pass.test")),
            ("mx.pass.test", "A", "192.0.2.1"),
            ("1.2.0.192.in-addr.arpa", "PTR", "mx.pass.test"),
            ("slow.test", "TIMEOUT", None),
        ])
        dns.start()
        config = "[dns]\\nnameserver = %s\\n" % dns.address   # 127.0.0.1@PORT
        ...
        dns.restart_with([...])           # new records, same port

    /usr/bin/python3 tests/harness/dnsserver.py --self-test   # checks itself

DESCRIPTION
    DnsServer(workdir, port=None, ttl=60, verbosity=0, log_queries=False)
        Keeps unbound.conf, unbound.pid and unbound.log (unbound's stderr) in
        workdir (created if missing).  port None picks, at the first start(),
        a port that is free for both UDP and TCP on 127.0.0.1 by binding port
        0; later starts reuse it.  ttl is the TTL of every record served and
        the negative-caching TTL (SOA minimum) of every NXDOMAIN or NODATA.
        Never uses port 53.  verbosity is unbound's; log_queries=True logs
        every query and reply to unbound.log (log_text() returns the log).
        Also a context manager: __exit__ calls stop().

    set_records(records)
        records is a list of (owner, rrtype, value).  Takes effect at the
        next start() (or use restart_with()).  rrtype and value:
            "A"      "192.0.2.1"            "AAAA"  "2001:db8::1"
            "MX"     (10, "mx.example")     "PTR", "CNAME"  "host.example"
            "TXT"    "one string", b"raw bytes", or a list of them: the list
                     is one RR holding several character-strings; an empty
                     list is a TXT RR with no character-string at all
                     (RDLENGTH 0, served through RFC 3597 generic syntax;
                     illegal in RFC 1035: libunbound, as a client, rejects
                     the whole answer and returns SERVFAIL).
            "TIMEOUT" None: see below.
        A bad IP address, MX preference or unknown rrtype raises ValueError.
        Text (str) is turned into octets as Latin-1 when every character
        fits (so a YAML "\\xEF" stays the single octet 0xEF), else as UTF-8;
        bytes are served as they are.  A TXT character-string longer than 255
        octets is split into several 255-octet character-strings in the same
        RR (the RR's concatenation, which is what SPF reads, is unchanged).
        Every octet is escaped (\\DDD, or \\" and \\\\ equivalents) in the
        generated local-data, so quotes, backslashes, semicolons, spaces,
        control characters, NUL and non-ASCII octets all come back exactly.

        Owner names and target names are plain text, not zone-file text:
        "." always separates labels (no escapes are interpreted), a trailing
        dot is optional, case is kept as given (DNS matching ignores it) and
        any other octet (space, %, quotes, non-ASCII) is allowed.  A record
        whose owner or target cannot exist in DNS -- an empty label ("a..b"),
        a label over 63 octets, a name over 255 octets -- is not served; it is
        listed, with the reason, in .skipped (a list of (record, reason)).

    What it answers (verify with dns_query or the self-test):
        - a listed name and type: NOERROR with the records, AA set.
        - a listed name, another type: NOERROR, no answer (NODATA), SOA in
          the authority section.
        - any name not listed: NXDOMAIN with SOA.  An empty non-terminal
          (a name with nothing of its own but listed names below it) answers
          NOERROR/NODATA as in real DNS.
        - ("name", "TIMEOUT", None): queries for that name get rcode REFUSED
          at once (unbound local-zone type "refuse"), except for the types
          listed for that same name, which are still answered; that is the
          openspf suite's reading of a TIMEOUT entry that follows records.
          Unlisted names *below* a TIMEOUT name are REFUSED too (they are
          inside the refused zone); listed names below it are answered
          normally.  A stub resolver sees REFUSED; a recursive resolver
          that forwards to this server (libunbound, as mxguard uses it) gets
          REFUSED, retries, and hands SERVFAIL to its caller within
          milliseconds, so no test waits for a real timeout.
        - unbound's built-in local zones (localhost, 127.in-addr.arpa, ::1,
          home.arpa, onion, test, invalid, the RFC 1918, TEST-NET-1/2/3,
          link-local, shared-address and other AS112 reverse zones, fd00::/8,
          fe80::/10, 2001:db8::/32 reverse, ...) are all switched off
          ("nodefault"), so the catch-all "." zone answers for them: PTR
          records for 192.0.2.x, 198.51.100.x, 203.0.113.x and 2001:db8:: are
          served, and localhost is NXDOMAIN like any unlisted name.
        - CNAME: the CNAME record alone is answered, whatever type was asked;
          the client's resolver follows it (libunbound does; a CNAME loop
          gives it SERVFAIL).
        - nothing is ever fetched from elsewhere: "." is a static local zone,
          the only module is the iterator and do-not-query-address covers
          0.0.0.0/0 and ::/0, so even a CH-class query cannot leave the host.
        Type SPF (99) and every other type not listed above are not served.

    start()
        Writes <workdir>/unbound.conf and runs `/usr/sbin/unbound -d -c CONF`
        (no chroot, username "", pidfile in workdir, 127.0.0.1 only, no IPv6,
        no remote control, verbosity as given, log to stderr which goes to
        <workdir>/unbound.log).  Returns once it answers a query over UDP and
        TCP; raises DnsServerError with the log text if it exits or does not
        answer within 10 s.  The readiness probe asks "id.server CH TXT" and
        checks the answer carries this instance's random identity, so another
        process holding the port cannot pass for ours.  A port picked by us
        that is taken in the meantime is replaced by another (3 tries).

    stop()
        SIGTERM to the PID, wait up to 5 s, then SIGKILL.  Idempotent.  Every
        running server is also stopped at interpreter exit (atexit), on
        SIGTERM and SIGHUP (handlers installed by the first start() from the
        main thread, chained to the previous ones), and, when started from the
        main thread, by the kernel if this process dies (PR_SET_PDEATHSIG).

    restart_with(records)
        stop(), set_records(records), start(), on the same port.

    port, address, pid, running, log_path, conf_path
        .address is "127.0.0.1@PORT", the form of mxguard's [dns] nameserver.

    query(name, rrtype, tcp=False, timeout=2.0) -> DnsResponse
        dns_query() against this server.

    dns_query(name, rrtype, server="127.0.0.1", port=53, timeout=2.0,
              tcp=False, rd=True, edns_size=1232, qclass=1) -> DnsResponse
        One question, over UDP (retried until timeout; falls back to TCP when
        the answer is truncated) or TCP.  Raises DnsTimeout (a TimeoutError)
        when no answer comes, DnsFormatError on a malformed reply.
        DnsResponse: .rcode (int), .rcode_name ("NOERROR", "NXDOMAIN",
        "REFUSED", ...), .aa, .tc, .answers, .authority (lists of
        ResourceRecord(name, rrtype, ttl, value)), .values(rrtype) (the
        answer values of that type).  Values: A/AAAA the address text; MX
        (preference, host); TXT a list of bytes (one per character-string);
        PTR/CNAME/NS a host name; SOA a tuple; anything else raw bytes.
        Names come back as text without the trailing dot ("." for the root),
        octets outside printable ASCII and "." or "\\" inside a label written
        as \\DDD.

DIAGNOSTICS
    DnsServerError (a RuntimeError) when unbound cannot start; its message
    holds the command, the exit status and unbound's log.
"""

from __future__ import annotations

import atexit
import ctypes
import ipaddress
import os
import random
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Iterable

UNBOUND = "/usr/sbin/unbound"

RRTYPE_CODES: dict[str, int] = {
    "A": 1, "NS": 2, "CNAME": 5, "SOA": 6, "PTR": 12, "MX": 15, "TXT": 16,
    "AAAA": 28, "OPT": 41, "SPF": 99, "ANY": 255,
}
RRTYPE_NAMES: dict[int, str] = {code: name for name, code in RRTYPE_CODES.items()}
RCODE_NAMES: dict[int, str] = {
    0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP",
    5: "REFUSED",
}
SERVED_TYPES = ("A", "AAAA", "MX", "TXT", "PTR", "CNAME")

# unbound 1.17's built-in local zones (unbound.conf(5), "default zones").
# "local-zone: NAME nodefault" removes one without creating a zone, so that
# the "." static catch-all (with our SOA) answers for it; a name that is not
# built in (in another unbound version) costs nothing.
DEFAULT_LOCAL_ZONES: tuple[str, ...] = (
    "localhost.", "127.in-addr.arpa.", "1." + "0." * 31 + "ip6.arpa.",
    "home.arpa.", "resolver.arpa.", "service.arpa.", "onion.", "test.",
    "invalid.", "10.in-addr.arpa.",
    *("%d.172.in-addr.arpa." % n for n in range(16, 32)),
    "168.192.in-addr.arpa.", "0.in-addr.arpa.", "254.169.in-addr.arpa.",
    "2.0.192.in-addr.arpa.", "100.51.198.in-addr.arpa.",
    "113.0.203.in-addr.arpa.", "255.255.255.255.in-addr.arpa.",
    *("%d.100.in-addr.arpa." % n for n in range(64, 128)),
    "0." * 32 + "ip6.arpa.", "d.f.ip6.arpa.", "8.e.f.ip6.arpa.",
    "9.e.f.ip6.arpa.", "a.e.f.ip6.arpa.", "b.e.f.ip6.arpa.",
    "8.b.d.0.1.0.0.2.ip6.arpa.",
)

Record = tuple[str, str, Any]


class DnsServerError(RuntimeError):
    """unbound could not be started or did not answer."""


class DnsTimeout(TimeoutError):
    """No DNS answer within the time given."""


class DnsFormatError(ValueError):
    """A DNS message that cannot be parsed."""


class BadName(ValueError):
    """A name that cannot exist in DNS (empty label, label > 63, name > 255)."""


# ---------------------------------------------------------------------------
# Names and text


def to_octets(text: str | bytes) -> bytes:
    """Text as DNS octets: bytes as they are, str as Latin-1 if it fits, else UTF-8."""
    if isinstance(text, (bytes, bytearray)):
        return bytes(text)
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        return text.encode("utf-8")


def name_labels(name: str | bytes) -> list[bytes]:
    """Split a plain-text domain name into labels.

    "." separates labels, one trailing dot is optional, "" and "." are the
    root.  Raises ValueError for a name that cannot exist in DNS: an empty
    label, a label over 63 octets, more than 255 octets in wire form.
    """
    raw = to_octets(name)
    if raw in (b"", b"."):
        return []
    if raw.endswith(b"."):
        raw = raw[:-1]
    labels = raw.split(b".")
    for label in labels:
        if not label:
            raise BadName("empty label in %r" % (name,))
        if len(label) > 63:
            raise BadName("label of %d octets (over 63) in %r" % (len(label), name))
    if sum(len(label) + 1 for label in labels) + 1 > 255:
        raise BadName("name over 255 octets: %r" % (name,))
    return labels


def labels_to_wire(labels: list[bytes]) -> bytes:
    return b"".join(bytes([len(label)]) + label for label in labels) + b"\x00"


_LABEL_SAFE = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")
# Inside a quoted TXT string only " and \ matter to unbound's RR parser; '
# would end the single-quoted local-data string, ; is escaped out of caution.
_TXT_SAFE = frozenset(b for b in range(0x20, 0x7F) if b not in b'"\\\';')


def zone_name(labels: list[bytes]) -> str:
    """Labels in zone-file syntax, absolute, every unusual octet as \\DDD."""
    if not labels:
        return "."
    return "".join(
        "".join(chr(b) if b in _LABEL_SAFE else "\\%03d" % b for b in label) + "."
        for label in labels
    )


def zone_txt(strings: list[bytes]) -> str:
    """TXT RDATA in zone-file syntax: quoted, escaped, split at 255 octets."""
    if not strings:
        return "\\# 0"
    chunks: list[bytes] = []
    for s in strings:
        if not s:
            chunks.append(b"")
        for i in range(0, len(s), 255):
            chunks.append(s[i:i + 255])
    return " ".join(
        '"' + "".join(chr(b) if b in _TXT_SAFE else "\\%03d" % b for b in chunk) + '"'
        for chunk in chunks
    )


def text_name(labels: list[bytes]) -> str:
    """Labels as readable text without trailing dot ("." for the root)."""
    if not labels:
        return "."
    return ".".join(
        "".join(chr(b) if 0x21 <= b < 0x7F and b not in b".\\" else "\\%03d" % b for b in label)
        for label in labels
    )


def _key(labels: list[bytes]) -> tuple[bytes, ...]:
    return tuple(label.lower() for label in labels)


# ---------------------------------------------------------------------------
# The stdlib DNS client


@dataclass
class ResourceRecord:
    name: str
    rrtype: str | int
    ttl: int
    value: Any


@dataclass
class DnsResponse:
    id: int
    flags: int
    rcode: int
    answers: list[ResourceRecord] = field(default_factory=list)
    authority: list[ResourceRecord] = field(default_factory=list)
    additional: list[ResourceRecord] = field(default_factory=list)

    @property
    def rcode_name(self) -> str:
        return RCODE_NAMES.get(self.rcode, "RCODE%d" % self.rcode)

    @property
    def aa(self) -> bool:
        return bool(self.flags & 0x0400)

    @property
    def tc(self) -> bool:
        return bool(self.flags & 0x0200)

    def values(self, rrtype: str) -> list[Any]:
        return [rr.value for rr in self.answers if rr.rrtype == rrtype]


def _read_name(msg: bytes, pos: int) -> tuple[list[bytes], int]:
    """Decompress the name at pos; return (labels, position after it)."""
    labels: list[bytes] = []
    end = -1
    jumps = 0
    while True:
        if pos >= len(msg):
            raise DnsFormatError("name runs past the message")
        length = msg[pos]
        if length & 0xC0 == 0xC0:
            if pos + 1 >= len(msg):
                raise DnsFormatError("truncated compression pointer")
            if end < 0:
                end = pos + 2
            pos = ((length & 0x3F) << 8) | msg[pos + 1]
            jumps += 1
            if jumps > 64:
                raise DnsFormatError("compression loop")
            continue
        if length & 0xC0:
            raise DnsFormatError("bad label type 0x%02x" % length)
        pos += 1
        if length == 0:
            break
        if pos + length > len(msg):
            raise DnsFormatError("label runs past the message")
        labels.append(msg[pos:pos + length])
        pos += length
    return labels, (end if end >= 0 else pos)


def _decode_rdata(msg: bytes, rrtype: int, start: int, length: int) -> Any:
    rdata = msg[start:start + length]
    if rrtype == 1 and length == 4:
        return str(ipaddress.IPv4Address(rdata))
    if rrtype == 28 and length == 16:
        return str(ipaddress.IPv6Address(rdata))
    if rrtype in (2, 5, 12):
        return text_name(_read_name(msg, start)[0])
    if rrtype == 15:
        (pref,) = struct.unpack("!H", rdata[:2])
        return (pref, text_name(_read_name(msg, start + 2)[0]))
    if rrtype in (16, 99):
        strings: list[bytes] = []
        i = 0
        while i < length:
            n = rdata[i]
            if i + 1 + n > length:
                raise DnsFormatError("TXT character-string runs past RDATA")
            strings.append(rdata[i + 1:i + 1 + n])
            i += 1 + n
        return strings
    if rrtype == 6:
        mname, pos = _read_name(msg, start)
        rname, pos = _read_name(msg, pos)
        return (text_name(mname), text_name(rname), *struct.unpack("!IIIII", msg[pos:pos + 20]))
    return rdata


def parse_response(msg: bytes) -> DnsResponse:
    if len(msg) < 12:
        raise DnsFormatError("message shorter than a header")
    ident, flags, qd, an, ns, ar = struct.unpack("!HHHHHH", msg[:12])
    resp = DnsResponse(id=ident, flags=flags, rcode=flags & 0x000F)
    pos = 12
    for _ in range(qd):
        _, pos = _read_name(msg, pos)
        pos += 4
    for count, section in ((an, resp.answers), (ns, resp.authority), (ar, resp.additional)):
        for _ in range(count):
            labels, pos = _read_name(msg, pos)
            if pos + 10 > len(msg):
                raise DnsFormatError("truncated RR header")
            rrtype, _rrclass, ttl, rdlen = struct.unpack("!HHIH", msg[pos:pos + 10])
            pos += 10
            if pos + rdlen > len(msg):
                raise DnsFormatError("RDATA runs past the message")
            if rrtype == 41:  # OPT: extended rcode bits
                resp.rcode |= (ttl >> 24) << 4
            value = _decode_rdata(msg, rrtype, pos, rdlen)
            section.append(ResourceRecord(text_name(labels), RRTYPE_NAMES.get(rrtype, rrtype), ttl, value))
            pos += rdlen
    return resp


def build_query(name: str | bytes, rrtype: str | int, ident: int, rd: bool = True,
                edns_size: int | None = 1232, qclass: int = 1) -> bytes:
    qtype = rrtype if isinstance(rrtype, int) else RRTYPE_CODES[rrtype.upper()]
    header = struct.pack("!HHHHHH", ident, 0x0100 if rd else 0, 1, 0, 0, 1 if edns_size else 0)
    question = labels_to_wire(name_labels(name)) + struct.pack("!HH", qtype, qclass)
    opt = b"\x00" + struct.pack("!HHIH", 41, edns_size, 0, 0) if edns_size else b""
    return header + question + opt


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise DnsFormatError("TCP connection closed mid-message")
        buf += chunk
    return buf


def dns_query(name: str | bytes, rrtype: str | int, server: str = "127.0.0.1", port: int = 53,
              timeout: float = 2.0, tcp: bool = False, rd: bool = True,
              edns_size: int | None = 1232, qclass: int = 1) -> DnsResponse:
    """Ask one question; see the module documentation."""
    ident = random.randrange(0x10000)
    query = build_query(name, rrtype, ident, rd, edns_size, qclass)
    deadline = time.monotonic() + timeout
    if tcp:
        try:
            with socket.create_connection((server, port), timeout=timeout) as sock:
                sock.settimeout(max(0.01, deadline - time.monotonic()))
                sock.sendall(struct.pack("!H", len(query)) + query)
                (length,) = struct.unpack("!H", _recv_exact(sock, 2))
                resp = parse_response(_recv_exact(sock, length))
        except (socket.timeout, ConnectionError) as exc:
            raise DnsTimeout("no TCP answer from %s@%d for %r %s: %s" % (server, port, name, rrtype, exc)) from exc
        if resp.id != ident:
            raise DnsFormatError("TCP answer with the wrong id")
        return resp
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.connect((server, port))
        resend = 0.0
        while True:
            now = time.monotonic()
            if now >= deadline:
                raise DnsTimeout("no UDP answer from %s@%d for %r %s" % (server, port, name, rrtype))
            if now >= resend:
                try:
                    sock.send(query)
                except ConnectionRefusedError:
                    pass
                resend = now + 0.25
            sock.settimeout(max(0.01, min(deadline, resend) - now))
            try:
                data = sock.recv(65535)
            except socket.timeout:
                continue
            except ConnectionRefusedError:  # ICMP port unreachable: nobody there yet
                time.sleep(0.02)
                continue
            try:
                resp = parse_response(data)
            except DnsFormatError:
                continue
            if resp.id != ident or not resp.flags & 0x8000:
                continue
            if resp.tc:
                return dns_query(name, rrtype, server, port, max(0.1, deadline - time.monotonic()),
                                 True, rd, edns_size, qclass)
            return resp


# ---------------------------------------------------------------------------
# The server


_LIVE: set["DnsServer"] = set()
_LIVE_LOCK = threading.Lock()
_SIGNALS_INSTALLED = False
_LIBC: Any = None


def _stop_all() -> None:
    with _LIVE_LOCK:
        servers = list(_LIVE)
    for server in servers:
        try:
            server.stop()
        except Exception:  # noqa: BLE001 - best effort at exit
            pass


atexit.register(_stop_all)


def _install_signal_handlers() -> None:
    """Stop every server on SIGTERM/SIGHUP, then do what was done before."""
    global _SIGNALS_INSTALLED
    if _SIGNALS_INSTALLED or threading.current_thread() is not threading.main_thread():
        return
    _SIGNALS_INSTALLED = True
    for signum in (signal.SIGTERM, signal.SIGHUP):
        previous = signal.getsignal(signum)

        def handler(num: int, frame: Any, previous: Any = previous) -> None:
            _stop_all()
            if callable(previous):
                previous(num, frame)
            elif previous == signal.SIG_IGN:
                return
            else:
                signal.signal(num, signal.SIG_DFL)
                os.kill(os.getpid(), num)

        signal.signal(signum, handler)


def _die_with_parent() -> None:
    """preexec_fn: SIGTERM to the child when the thread that forked it dies."""
    if _LIBC is not None:
        _LIBC.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def free_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1 (never 53)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("127.0.0.1", 0))
            port = udp.getsockname()[1]
            if port == 53:
                continue
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    raise DnsServerError("no free UDP+TCP port on 127.0.0.1")


@dataclass
class _Plan:
    zones: dict[tuple[bytes, ...], tuple[str, str]]   # key -> (zone text, type)
    data: list[str]                                    # local-data RR strings
    skipped: list[tuple[Record, str]]


class DnsServer:
    """unbound on 127.0.0.1:port serving a given list of records; see module doc."""

    def __init__(self, workdir: str, port: int | None = None, ttl: int = 60,
                 verbosity: int = 0, log_queries: bool = False) -> None:
        self.workdir = os.path.abspath(workdir)
        self._port: int | None = port
        self._port_given = port is not None
        self.ttl = ttl
        self.verbosity = verbosity
        self.log_queries = log_queries
        self.records: list[Record] = []
        self.skipped: list[tuple[Record, str]] = []
        self._plan: _Plan = self._make_plan([])
        self._proc: subprocess.Popen[bytes] | None = None
        # Answered to "id.server CH TXT": tells our unbound from any other
        # process that might hold the same port.
        self._identity = "dnsserver-%d-%016x" % (os.getpid(), random.getrandbits(64))
        self._log: Any = None
        self.conf_path = os.path.join(self.workdir, "unbound.conf")
        self.log_path = os.path.join(self.workdir, "unbound.log")
        self.pid_path = os.path.join(self.workdir, "unbound.pid")

    # -- public API ---------------------------------------------------------

    @property
    def port(self) -> int:
        if self._port is None:
            self._port = free_port()
        return self._port

    @property
    def address(self) -> str:
        return "127.0.0.1@%d" % self.port

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def set_records(self, records: Iterable[Record]) -> None:
        records = list(records)
        self._plan = self._make_plan(records)   # validates before replacing
        self.records = records
        self.skipped = self._plan.skipped

    def start(self) -> None:
        if self.running:
            raise DnsServerError("unbound already running (pid %d)" % self.pid)
        os.makedirs(self.workdir, exist_ok=True)
        tries = 1 if self._port_given else 3
        for attempt in range(tries):
            try:
                self._start_once()
                return
            except DnsServerError as exc:
                in_use = "address already in use" in str(exc).lower()
                if not in_use or attempt == tries - 1:
                    raise
                self._port = free_port()

    def stop(self) -> None:
        proc = self._proc
        if proc is not None:
            if proc.poll() is None:
                try:
                    proc.send_signal(signal.SIGTERM)
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
                except ProcessLookupError:
                    pass
            self._proc = None
        if self._log is not None:
            self._log.close()
            self._log = None
        with _LIVE_LOCK:
            _LIVE.discard(self)

    def restart_with(self, records: Iterable[Record]) -> None:
        self.stop()
        self.set_records(records)
        self.start()

    def query(self, name: str | bytes, rrtype: str | int, tcp: bool = False,
              timeout: float = 2.0) -> DnsResponse:
        return dns_query(name, rrtype, "127.0.0.1", self.port, timeout=timeout, tcp=tcp)

    def log_text(self) -> str:
        try:
            with open(self.log_path, "r", errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def __enter__(self) -> "DnsServer":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def __del__(self) -> None:
        try:
            self.stop()
        except Exception:  # noqa: BLE001
            pass

    # -- configuration ------------------------------------------------------

    def _make_plan(self, records: list[Record]) -> _Plan:
        skipped: list[tuple[Record, str]] = []
        owners: dict[tuple[bytes, ...], list[bytes]] = {}
        timeouts: set[tuple[bytes, ...]] = set()
        data: list[tuple[tuple[bytes, ...], str]] = []
        for rec in records:
            if len(rec) != 3:
                raise ValueError("record is not (owner, rrtype, value): %r" % (rec,))
            owner, rrtype, value = rec
            rrtype = str(rrtype).upper()
            if rrtype not in SERVED_TYPES and rrtype != "TIMEOUT":
                raise ValueError("rrtype %r not served (%s or TIMEOUT)" % (rrtype, ", ".join(SERVED_TYPES)))
            try:
                labels = name_labels(owner)
                rdata = self._rdata(rrtype, value)
            except BadName as exc:
                skipped.append((rec, str(exc)))
                continue
            key = _key(labels)
            owners.setdefault(key, labels)
            if rrtype == "TIMEOUT":
                timeouts.add(key)
                continue
            data.append((key, "%s %d IN %s %s" % (zone_name(labels), self.ttl, rrtype, rdata)))

        zones: dict[tuple[bytes, ...], tuple[str, str]] = {(): (".", "static")}
        for text in DEFAULT_LOCAL_ZONES:
            labels = name_labels(text)
            zones[_key(labels)] = (zone_name(labels), "nodefault")
        for key in timeouts:
            zones[key] = (zone_name(owners[key]), "refuse")
        # A listed name under a refused name gets a zone of its own, so that it
        # answers NODATA/NXDOMAIN normally instead of REFUSED.
        for key, labels in owners.items():
            if key in timeouts:
                continue
            if any(key[i:] in timeouts for i in range(1, len(key))):
                zones[key] = (zone_name(labels), "static")
        local_data = [rr for _, rr in data]
        for key, (text, ztype) in sorted(zones.items(), key=lambda kv: (len(kv[0]), kv[0])):
            if ztype == "static":
                local_data.append("%s %d IN SOA ns.dnsserver.invalid. hostmaster.dnsserver.invalid. "
                                  "1 3600 600 86400 %d" % (text, self.ttl, self.ttl))
        return _Plan(zones=zones, data=local_data, skipped=skipped)

    @staticmethod
    def _target(value: Any) -> str:
        try:
            return zone_name(name_labels("" if value is None else value))
        except BadName as exc:
            raise BadName("target: %s" % exc) from None

    def _rdata(self, rrtype: str, value: Any) -> str:
        if rrtype == "TIMEOUT":
            return ""
        if rrtype == "A":
            return str(ipaddress.IPv4Address(str(value).strip()))
        if rrtype == "AAAA":
            return str(ipaddress.IPv6Address(str(value).strip()))
        if rrtype in ("PTR", "CNAME"):
            return self._target(value)
        if rrtype == "MX":
            if not isinstance(value, (list, tuple)) or len(value) != 2:
                raise ValueError("MX value must be (preference, host): %r" % (value,))
            pref = int(value[0])
            if not 0 <= pref <= 65535:
                raise ValueError("MX preference out of range: %r" % (value,))
            return "%d %s" % (pref, self._target(value[1]))
        # TXT
        if isinstance(value, (list, tuple)):
            strings = [to_octets(v if isinstance(v, (str, bytes, bytearray)) else str(v)) for v in value]
        else:
            strings = [to_octets(value if isinstance(value, (str, bytes, bytearray)) else str(value))]
        return zone_txt(strings)

    def config_text(self) -> str:
        def quote(s: str) -> str:
            return '"%s"' % s

        lines = [
            "# written by tests/harness/dnsserver.py; rewritten at every start",
            "server:",
            "    verbosity: %d" % self.verbosity,
            "    use-syslog: no",
            '    logfile: ""',
            "    log-time-ascii: yes",
            "    log-queries: %s" % ("yes" if self.log_queries else "no"),
            "    log-replies: %s" % ("yes" if self.log_queries else "no"),
            '    username: ""',
            '    chroot: ""',
            "    directory: %s" % quote(self.workdir),
            "    pidfile: %s" % quote(self.pid_path),
            "    interface: 127.0.0.1",
            "    port: %d" % self.port,
            "    interface-automatic: no",
            "    do-ip4: yes",
            "    do-ip6: no",
            "    do-udp: yes",
            "    do-tcp: yes",
            "    do-daemonize: no",
            "    num-threads: 1",
            "    so-reuseport: no",
            "    access-control: 127.0.0.0/8 allow",
            '    module-config: "iterator"',
            "    do-not-query-localhost: yes",
            "    do-not-query-address: 0.0.0.0/0",
            "    do-not-query-address: ::/0",
            "    rrset-roundrobin: no",
            "    minimal-responses: yes",
            "    hide-identity: no",
            "    identity: %s" % quote(self._identity),
            "    hide-version: yes",
            "    prefetch: no",
        ]
        for key, (text, ztype) in sorted(self._plan.zones.items(), key=lambda kv: (len(kv[0]), kv[0])):
            lines.append("    local-zone: %s %s" % (quote(text), ztype))
        for rr in self._plan.data:
            # Single quotes: the RR text holds double quotes; it never holds a
            # single quote, a newline or a bare backslash pair that could end it.
            lines.append("    local-data: '%s'" % rr)
        lines += ["remote-control:", "    control-enable: no", ""]
        return "\n".join(lines)

    # -- process ------------------------------------------------------------

    def _start_once(self) -> None:
        global _LIBC
        with open(self.conf_path, "w") as f:
            f.write(self.config_text())
        try:
            os.unlink(self.pid_path)
        except FileNotFoundError:
            pass
        self._log = open(self.log_path, "ab")
        self._log.write(b"--- dnsserver.py: starting unbound on port %d\n" % self.port)
        self._log.flush()
        log_start = self._log.tell()
        cmd = [UNBOUND, "-d", "-c", self.conf_path]
        preexec = None
        if threading.current_thread() is threading.main_thread():
            if _LIBC is None:
                try:
                    _LIBC = ctypes.CDLL(None, use_errno=True)
                except OSError:
                    _LIBC = None
            preexec = _die_with_parent
        _install_signal_handlers()
        try:
            self._proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self._log,
                                          stderr=self._log, cwd=self.workdir, preexec_fn=preexec)
        except OSError as exc:
            self._log.close()
            self._log = None
            raise DnsServerError("cannot run %s: %s" % (UNBOUND, exc)) from exc
        with _LIVE_LOCK:
            _LIVE.add(self)
        deadline = time.monotonic() + 10.0
        last_error = ""
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                status = self._proc.returncode
                self.stop()
                raise DnsServerError("%s exited with status %s:\n%s" % (
                    " ".join(cmd), status, self._log_since(log_start)))
            try:
                ident = self._identity.encode()
                for tcp in (False, True):
                    r = dns_query("id.server", "TXT", "127.0.0.1", self.port, timeout=0.3 if not tcp else 1.0,
                                  tcp=tcp, qclass=3)
                    if r.values("TXT") != [[ident]]:
                        raise DnsFormatError("port %d answered by another server: %r"
                                             % (self.port, r.values("TXT")))
                if self._proc.poll() is None:
                    return
            except (DnsTimeout, DnsFormatError, OSError) as exc:
                last_error = str(exc)
                time.sleep(0.05)
        self.stop()
        raise DnsServerError("%s did not answer within 10 s (%s):\n%s" % (
            " ".join(cmd), last_error, self._log_since(log_start)))

    def _log_since(self, offset: int) -> str:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(offset)
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""


# ---------------------------------------------------------------------------
# Self-test: /usr/bin/python3 tests/harness/dnsserver.py --self-test


def _self_test() -> int:
    failures: list[str] = []
    checks = 0

    def check(label: str, cond: bool, detail: Any = "") -> None:
        nonlocal checks
        checks += 1
        if not cond:
            failures.append("%s: %s" % (label, detail))
            print("FAIL %s: %s" % (label, detail))

    odd_txt = [
        b'quote " backslash \\ semicolon ; single \' paren ( ) at @ dollar $ percent %',
        b"",
        bytes(range(256)),                  # every octet, 256 long: split 255 + 1
        "caf\u00e9 \u00ef\u00bb\u00bf".encode("latin-1"),
        "snow \u2603".encode("utf-8"),
        b"x" * 700,
    ]
    long_label = "a" * 64
    records: list[Record] = [
        ("Mixed.Case.Example.COM.", "A", "192.0.2.10"),
        ("mixed.case.example.com", "AAAA", "2001:DB8::10"),
        ("mixed.case.example.com", "MX", (10, "MX.Example.com.")),
        ("mixed.case.example.com", "MX", [20, "mx2.example.com"]),
        ("txt.example.org", "TXT", "v=spf1 -all"),
        ("txt.example.org", "TXT", ["v=spf1 ip4:", "192.0.2.5 -all"]),
        ("bytes.example.org", "TXT", odd_txt),
        ("latin.example.org", "TXT", "v=spf1 a:\xef\xbb\xbfgarbage.example.net -all"),
        ("empty-rr.example.org", "TXT", []),
        ("10.2.0.192.in-addr.arpa", "PTR", "mixed.case.example.com"),
        ("5.100.51.198.in-addr.arpa", "PTR", "two.example.net"),
        ("7.113.0.203.in-addr.arpa", "PTR", "three.example.net"),
        ("1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.D.0.1.0.0.2.ip6.arpa", "PTR", "six.example.net"),
        ("alias.example.net", "CNAME", "mixed.case.example.com"),
        ("loop.example.net", "CNAME", "LOOP.example.net."),
        ("macro%percent  space%20url-space.example.com", "TXT", "odd name"),
        ("host.test", "A", "192.0.2.20"),
        ("x.invalid", "A", "192.0.2.21"),
        ("deep.ent.example.net", "A", "192.0.2.22"),
        (long_label + ".example.com", "TXT", "never served"),
        ("a..b.example.com", "A", "192.0.2.23"),
        ("slow.example.com", "TIMEOUT", None),
        ("child.slow.example.com", "A", "192.0.2.24"),
        ("half.example.net", "TXT", "v=spf1 -all"),
        ("half.example.net", "TIMEOUT", None),
    ]
    tmp = tempfile.mkdtemp(prefix="dnsserver-selftest-")
    with DnsServer(tmp) as dns:
        dns.set_records(records)
        check("skipped records noted", len(dns.skipped) == 2, dns.skipped)
        t0 = time.monotonic()
        dns.start()
        print("unbound pid %d on %s, started in %.2f s" % (dns.pid, dns.address, time.monotonic() - t0))
        q = dns.query

        r = q("mixed.case.example.com", "A")
        check("A with case folding", r.rcode_name == "NOERROR" and r.values("A") == ["192.0.2.10"], r)
        check("AA flag", r.aa, r.flags)
        r = q("MIXED.case.EXAMPLE.com.", "AAAA")
        check("AAAA", r.values("AAAA") == ["2001:db8::10"], r)
        r = q("mixed.case.example.com", "MX")
        check("MX", sorted((p, h.lower()) for p, h in r.values("MX"))
              == [(10, "mx.example.com"), (20, "mx2.example.com")], r)
        r = q("mixed.case.example.com", "TXT")
        check("NODATA for other type", r.rcode_name == "NOERROR" and not r.answers
              and any(rr.rrtype == "SOA" for rr in r.authority), r)
        r = q("nothing.example.com", "A")
        check("NXDOMAIN for unlisted", r.rcode_name == "NXDOMAIN" and not r.answers, r)
        r = q("ent.example.net", "A")
        check("empty non-terminal is NODATA", r.rcode_name == "NOERROR" and not r.answers, r)
        r = q("txt.example.org", "TXT")
        check("two TXT RRs, one with two strings",
              sorted(r.values("TXT")) == sorted([[b"v=spf1 -all"], [b"v=spf1 ip4:", b"192.0.2.5 -all"]]), r)
        expected: list[bytes] = []
        for s in odd_txt:
            expected += [s[i:i + 255] for i in range(0, len(s), 255)] or [b""]
        for tcp in (False, True):
            r = q("bytes.example.org", "TXT", tcp=tcp)
            check("TXT octets exact (tcp=%s)" % tcp, r.values("TXT") == [expected],
                  [r.values("TXT"), expected])
        r = q("latin.example.org", "TXT")
        check("str TXT as Latin-1", r.values("TXT") == [[b"v=spf1 a:\xef\xbb\xbfgarbage.example.net -all"]], r)
        r = q("empty-rr.example.org", "TXT")
        check("TXT RR without character-strings", r.values("TXT") == [[]], r)
        for name, host in (("10.2.0.192.in-addr.arpa", "mixed.case.example.com"),
                           ("5.100.51.198.in-addr.arpa", "two.example.net"),
                           ("7.113.0.203.in-addr.arpa", "three.example.net"),
                           ("1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa",
                            "six.example.net")):
            r = q(name, "PTR")
            check("PTR in default zone %s" % name, r.values("PTR") == [host], r)
        r = q("11.2.0.192.in-addr.arpa", "PTR")
        check("unlisted TEST-NET PTR is NXDOMAIN", r.rcode_name == "NXDOMAIN", r)
        r = q("localhost", "A")
        check("localhost not served", r.rcode_name == "NXDOMAIN", r)
        r = q("1.0.0.127.in-addr.arpa", "PTR")
        check("127.0.0.1 PTR not served", r.rcode_name == "NXDOMAIN", r)
        r = q("host.test", "A")
        check(".test served", r.values("A") == ["192.0.2.20"], r)
        r = q("x.invalid", "A")
        check(".invalid served", r.values("A") == ["192.0.2.21"], r)
        r = q("www.google.com", "A")
        check("nothing recursed", r.rcode_name == "NXDOMAIN", r)
        r = q("alias.example.net", "A")
        check("CNAME answered", r.answers and r.answers[0].rrtype == "CNAME"
              and r.answers[0].value == "mixed.case.example.com", r)
        r = q("loop.example.net", "TXT")
        check("CNAME loop answered", r.rcode_name in ("NOERROR", "SERVFAIL"), r)
        r = q("macro%percent  space%20url-space.example.com", "TXT")
        check("odd owner name", r.values("TXT") == [[b"odd name"]], r)
        r = q("b.example.com", "A")
        check("empty-label record not served", r.rcode_name == "NXDOMAIN", r)
        r = q("slow.example.com", "TXT")
        check("TIMEOUT name refused", r.rcode_name == "REFUSED", r)
        r = q("unlisted.slow.example.com", "A")
        check("unlisted name under TIMEOUT refused", r.rcode_name == "REFUSED", r)
        r = q("child.slow.example.com", "A")
        check("listed name under TIMEOUT served", r.values("A") == ["192.0.2.24"], r)
        r = q("child.slow.example.com", "TXT")
        check("listed name under TIMEOUT NODATA", r.rcode_name == "NOERROR" and not r.answers, r)
        r = q("half.example.net", "TXT")
        check("records of a TIMEOUT name served", r.values("TXT") == [[b"v=spf1 -all"]], r)
        r = q("half.example.net", "A")
        check("other types of a TIMEOUT name refused", r.rcode_name == "REFUSED", r)
        r = q("txt.example.org", "SPF")
        check("type SPF not served", r.rcode_name == "NOERROR" and not r.answers, r)

        old_pid, old_port = dns.pid, dns.port
        dns.restart_with([("txt.example.org", "TXT", "v=spf1 +all")])
        check("restart keeps port", dns.port == old_port, (old_port, dns.port))
        check("restart new process", dns.pid != old_pid, (old_pid, dns.pid))
        check("old process gone", not os.path.exists("/proc/%d" % old_pid)
              or open("/proc/%d/stat" % old_pid).read().split()[2] == "Z", old_pid)
        r = q("txt.example.org", "TXT")
        check("restart serves new data", r.values("TXT") == [[b"v=spf1 +all"]], r)
        r = q("mixed.case.example.com", "A")
        check("restart drops old data", r.rcode_name == "NXDOMAIN", r)
        pid = dns.pid
    check("stopped by context manager", not os.path.exists("/proc/%d" % pid), pid)

    tmp_bad = tempfile.mkdtemp(prefix="dnsserver-selftest-")
    bad = DnsServer(tmp_bad, port=old_port)
    with DnsServer(tmp, port=old_port) as holder:
        holder.start()
        try:
            bad.start()
            check("start fails on a taken port", False, "started")
        except DnsServerError as exc:
            check("start failure carries unbound's log", "unbound" in str(exc).lower(), exc)
        finally:
            bad.stop()
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(tmp_bad, ignore_errors=True)
    print("%d passed, %d failed" % (checks - len(failures), len(failures)))
    return 1 if failures else 0


if __name__ == "__main__":
    if sys.argv[1:] == ["--self-test"]:
        sys.exit(_self_test())
    print("usage: %s --self-test" % sys.argv[0], file=sys.stderr)
    sys.exit(2)
