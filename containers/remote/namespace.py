"""A second host for tests: a network and mount namespace of the test's own.

`NamespaceHost` makes a network namespace joined to this one by a veth pair
on a /30 of 10.0.0.0/8 that no route of this machine touches, and a mount
namespace in which the paths only the client has (its output base, its venv
root, its checkouts) are hidden under empty tmpfs mounts. A worker started
there (`RemoteWorker(root, host=NamespaceHost(...))`) listens on the namespace
side of the pair and cannot read the client's files, so an action that needs
one fails as it would on another machine. `binds` puts a directory of the
worker's own at a path the client also has, the way a container image puts
its venv at a fixed path.

The namespaces belong to a holder process (`sleep`) that the kernel kills
when this process dies (PR_SET_PDEATHSIG). Workers join them with nsenter;
a worker killed mid-action leaves the host up, so the client sees the
connection refused, as it would from a machine whose worker crashed. Needs
root (CAP_NET_ADMIN and CAP_SYS_ADMIN): veth pairs and mounts.
"""

import ipaddress
import os
import random
import secrets
import select
import subprocess
import time
from pathlib import Path

from containers.remote import worker as worker_lib

# Inside the namespaces: wait for the veth end, address it, hide and bind, report.
_SETUP = r"""
set -eu
dev=$1 addr=$2 hides=$3 binds=$4
i=0
until ip link show "$dev" >/dev/null 2>&1; do
  i=$((i + 1)); [ "$i" -lt 200 ] || { echo "no interface $dev" >&2; exit 1; }
  sleep 0.05
done
ip link set lo up
ip addr add "$addr/30" dev "$dev"
ip link set "$dev" up
printf '%s\n' "$hides" | while IFS= read -r path; do
  [ -z "$path" ] || mount -t tmpfs -o mode=0755,size=64k knlp-hidden "$path"
done
printf '%s\n' "$binds" | while IFS=' ' read -r src dst; do
  [ -z "$src" ] || { mkdir -p "$dst"; mount --bind "$src" "$dst"; }
done
echo ready
exec sleep 2147483647
"""


class HostError(Exception):
    """The namespace host could not be set up; the message says why."""


def _run(argv):
    proc = subprocess.run(argv, capture_output=True, text=True)
    if proc.returncode != 0:
        raise HostError(f"`{' '.join(argv)}` failed: {proc.stderr.strip()}")
    return proc.stdout


def _wait_for_own_netns(proc, timeout):
    """Returns once `proc` has left this network namespace.

    `ip link add ... netns PID` moves the veth end into whatever namespace PID
    is in at that moment; before unshare has made its own (a loaded machine
    takes a while to get there), that is still this one.
    """
    ours = os.readlink("/proc/self/ns/net")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if os.readlink(f"/proc/{proc.pid}/ns/net") != ours:
                return
        except OSError:
            pass
        if proc.poll() is not None:
            break
        time.sleep(0.01)
    raise HostError(f"the namespace holder (pid {proc.pid}) did not unshare its network")


def used_networks():
    """Every IPv4 network a route or an address of this machine covers."""
    nets = []
    for line in _run(["ip", "-4", "route", "show", "table", "all"]).splitlines():
        word = line.split()[0] if line.split() else ""
        if word in ("unreachable", "blackhole", "prohibit", "local", "broadcast"):
            word = line.split()[1]
        if word == "default":
            continue
        try:
            nets.append(ipaddress.ip_network(word, strict=False))
        except ValueError:
            pass
    return nets


def free_subnet(rng=None):
    """A /30 of 10.0.0.0/8 that overlaps nothing this machine routes."""
    rng = rng or random.SystemRandom()
    used = used_networks()
    for _ in range(100):
        net = ipaddress.ip_network(f"10.{rng.randrange(256)}.{rng.randrange(256)}.0/30")
        if not any(net.overlaps(u) for u in used):
            return net
    raise HostError("no free /30 in 10.0.0.0/8: every one overlaps a route of this machine")


class NamespaceHost:
    """A network and mount namespace with a veth pair to this one.

    `hide`: absolute paths the worker must not see (each becomes an empty
    directory there). `binds`: {path the worker sees: directory of its own}.
    """

    def __init__(self, hide=(), binds=None):
        self.hide = [Path(p).absolute() for p in hide]
        self.binds = {Path(k).absolute(): Path(v).absolute() for k, v in (binds or {}).items()}
        for path in self.hide + list(self.binds.values()):
            if not path.is_dir():
                raise HostError(f"{path}: not a directory; hide= and binds= take directories")
        for path in self.hide + list(self.binds):
            if any(c in str(path) for c in "\n "):
                raise HostError(f"{path!r}: a path with a space or a newline cannot be mounted")
        self.holder = None
        self.subnet = None
        suffix = secrets.token_hex(3)
        self.outer_dev, self.inner_dev = f"knlph{suffix}", f"knlpw{suffix}"

    @property
    def address(self):
        """The worker's address: the namespace end of the veth pair."""
        return str(self.subnet[2])

    @property
    def client_address(self):
        return str(self.subnet[1])

    def check_root(self, root):
        """Refuses a worker root the namespace hides."""
        root = Path(root).absolute()
        for path in self.hide:
            if path == root or path in root.parents:
                raise HostError(f"the worker root {root} is under the hidden path {path}")

    def check_port(self, port):
        """Nothing but this host's workers listens in its network namespace."""

    def make_store(self, path):
        """The actions' checkpoint store as the namespace sees it (mode 0700).

        Bind a directory of the worker's own there (`binds`) for a store that
        holds checkpoints: a hidden path is a tmpfs of 64 KiB.
        """
        pid = str(self.holder.pid)
        _run(["nsenter", "-t", pid, "-m", "--", "mkdir", "-p", "-m", "0700", str(path)])

    def wrap(self, argv):
        """`argv` run inside the namespaces, in a PID namespace of its own."""
        pid = str(self.holder.pid)
        return ["nsenter", "-t", pid, "-n", "-m", "--", *worker_lib.Loopback().wrap(argv)]

    def start(self, timeout=20):
        if os.geteuid() != 0:
            raise HostError("a namespace host needs root (veth pairs and mounts)")
        self.subnet = free_subnet()
        hides = "\n".join(str(p) for p in self.hide)
        binds = "\n".join(f"{src} {dst}" for dst, src in self.binds.items())
        self.holder = subprocess.Popen(
            ["unshare", "--net", "--mount", "--", "sh", "-c", _SETUP, "sh"]
            + [self.inner_dev, self.address, hides, binds],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            preexec_fn=worker_lib._die_with_parent,
        )
        try:
            _wait_for_own_netns(self.holder, timeout)
            _run(
                ["ip", "link", "add", self.outer_dev, "type", "veth", "peer", "name"]
                + [self.inner_dev, "netns", str(self.holder.pid)]
            )
            _run(["ip", "addr", "add", f"{self.client_address}/30", "dev", self.outer_dev])
            _run(["ip", "link", "set", self.outer_dev, "up"])
            ready, _, _ = select.select([self.holder.stdout], [], [], timeout)
            line = self.holder.stdout.readline() if ready else b""
            if line.strip() != b"ready":
                self.holder.kill()
                err = self.holder.stderr.read().decode(errors="replace")
                raise HostError(f"the namespace host did not come up: {err.strip()}")
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self):
        """Ends the namespaces (their veth pair goes with them); safe to call twice."""
        if self.holder is not None:
            self.holder.kill()
            self.holder.wait()
            self.holder.stdout.close()
            self.holder.stderr.close()
            self.holder = None
        if Path(f"/sys/class/net/{self.outer_dev}").exists():
            subprocess.run(["ip", "link", "del", self.outer_dev], capture_output=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
