"""A narrow link on this machine: a network namespace joined to the root one by a veth pair, with a
``tbf`` shaper on the root side, so everything sent toward the namespace is held to a rate behind a
real queue that drops what overflows it. A viewer process run inside (``exec_argv``) sees what a
viewer on a narrow access link sees; the server stays in the root namespace.

    link = NarrowLink.create(rate_kbit=600)   # ip netns, veth, addresses on a private /30, tbf
    link.host_address                          # the server listens (HTTP and ICE) here too
    subprocess.Popen(link.exec_argv([sys.executable, "viewer.py", ...]))
    link.shaper()                              # tbf's counters: sent, dropped, overlimits
    link.close()                               # the namespace and both veth ends are gone

The kernel here has no ``netem``; loss is the queue's (a link narrower than the stream) or is made at
the receiving viewer (bench/lossy.py). Needs root and iproute2. Each link takes a /30 out of
10.200.0.0/14 that no interface of this machine has, and its names carry the creating process's id,
so parallel runs do not collide, and ``clean_stale`` removes only links whose process is gone.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import random
import re
import shutil
import subprocess

PREFIX = "lsnet"  # every namespace made here is named lsnet-{pid}-{n}
POOL = ipaddress.ip_network("10.200.0.0/14")  # private, and unused by anything this project configures


class Unavailable(RuntimeError):
    """Namespaces cannot be made here (not root, or no iproute2): callers skip, with this reason."""


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check, timeout=20)


def _run(argv: list[str]) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=20)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {done.stderr.strip()}")


def available() -> str:
    """Empty when links can be made here, else why not."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    for tool in ("ip", "tc"):
        if shutil.which(tool) is None:
            return f"{tool} (iproute2) is not installed"
    return ""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stale() -> list[str]:
    """Delete the links left by processes that died before closing them; returns their names."""
    removed = []
    for line in _ip("netns", "list", check=False).stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        match = re.fullmatch(rf"{PREFIX}-(\d+)-\d+", name)
        if match and not _alive(int(match[1])):
            # Deleting the namespace destroys its veth end, and with it the root side and its tbf.
            _ip("netns", "delete", name, check=False)
            removed.append(name)
    return removed


def _used_networks() -> list[ipaddress.IPv4Network]:
    out = _ip("-4", "-o", "addr", "show", check=False).stdout
    return [ipaddress.IPv4Interface(m[1]).network for m in re.finditer(r"inet (\S+)", out)]


def _free_slash30(rng: random.Random) -> ipaddress.IPv4Network:
    used = _used_networks()
    subnets = POOL.num_addresses // 4
    for _ in range(200):
        net = ipaddress.IPv4Network((int(POOL.network_address) + 4 * rng.randrange(subnets), 30))
        if not any(net.overlaps(u) for u in used):
            return net
    raise RuntimeError(f"no free /30 in {POOL}")


@dataclasses.dataclass
class Shaper:
    """tbf's counters on the link toward the namespace (``tc -s qdisc``)."""

    sent_bytes: int
    sent_packets: int
    dropped: int
    overlimits: int


_counter = 0


@dataclasses.dataclass
class NarrowLink:
    name: str  # the namespace
    host_if: str  # the veth end in the root namespace (tbf sits on its egress: toward the viewer)
    host_address: str
    ns_address: str
    rate_kbit: int
    queue_ms: int

    @classmethod
    def create(cls, rate_kbit: int, queue_ms: int = 100, burst_bytes: int = 4000) -> NarrowLink:
        """``rate_kbit`` toward the namespace; the queue holds ``queue_ms`` of it (at least two full
        packets), what does not fit is dropped; ``burst_bytes`` may leave at line rate after an idle
        moment, as a real access link's token bucket allows."""
        why = available()
        if why:
            raise Unavailable(why)
        clean_stale()
        global _counter
        _counter += 1
        pid = os.getpid()
        name = f"{PREFIX}-{pid}-{_counter}"
        tag = f"{pid % 0xFFFFF:05x}{_counter % 0xFF:02x}"  # interface names are at most 15 characters
        host_if, ns_if = f"lsh{tag}", f"lsn{tag}"
        net = _free_slash30(random.Random(f"{name}-{os.urandom(4).hex()}"))
        host_address, ns_address = (str(a) for a in net.hosts())
        link = cls(name, host_if, host_address, ns_address, rate_kbit, queue_ms)
        try:
            _run(["ip", "netns", "add", name])
            _run(["ip", "link", "add", host_if, "type", "veth", "peer", "name", ns_if])
            _run(["ip", "link", "set", ns_if, "netns", name])
            _run(["ip", "addr", "add", f"{host_address}/30", "dev", host_if])
            _run(["ip", "link", "set", host_if, "up"])
            inside = ["ip", "netns", "exec", name]
            _run([*inside, "ip", "addr", "add", f"{ns_address}/30", "dev", ns_if])
            _run([*inside, "ip", "link", "set", ns_if, "up"])
            _run([*inside, "ip", "link", "set", "lo", "up"])
            # tbf's "latency" is the longest a packet may wait in its queue: the queue's size in time.
            _run(
                ["tc", "qdisc", "add", "dev", host_if, "root", "tbf", "rate", f"{rate_kbit}kbit",
                 "burst", str(burst_bytes), "latency", f"{queue_ms}ms"]
            )  # fmt: skip
        except BaseException:
            link.close()
            raise
        return link

    def exec_argv(self, argv: list[str]) -> list[str]:
        """``argv`` run inside the namespace."""
        return ["ip", "netns", "exec", self.name, *argv]

    def shaper(self) -> Shaper:
        out = subprocess.run(
            ["tc", "-s", "qdisc", "show", "dev", self.host_if], capture_output=True, text=True, timeout=20
        ).stdout
        sent = re.search(r"Sent (\d+) bytes (\d+) pkt \(dropped (\d+), overlimits (\d+)", out)
        if sent is None:
            raise RuntimeError(f"no tbf counters on {self.host_if}: {out!r}")
        return Shaper(*(int(x) for x in sent.groups()))

    def close(self) -> None:
        """Remove the namespace and both veth ends (safe to call twice, or after a failed create)."""
        _ip("link", "delete", self.host_if, check=False)
        _ip("netns", "delete", self.name, check=False)

    def __enter__(self) -> NarrowLink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
