"""Tests of worker.py and namespace.py: where the worker listens, what it sees, how it ends."""

import ipaddress
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from containers.remote import namespace, worker
from experiments import store as run_store

HERE = Path(__file__).resolve().parent


def _listening(port):
    """The local addresses (as IP strings) of sockets listening on TCP `port`."""
    found = []
    for table, size in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            address, _, hexport = fields[1].partition(":")
            if fields[3] != "0A" or int(hexport, 16) != port:  # 0A: LISTEN
                continue
            raw = bytes.fromhex(address)
            # /proc prints each 32-bit word in host (little-endian) order.
            raw = b"".join(raw[i : i + 4][::-1] for i in range(0, size // 2, 4))
            ip = ipaddress.ip_address(raw)
            found.append(str(getattr(ip, "ipv4_mapped", None) or ip))
    return found


def _other_addresses():
    """This machine's IPv4 addresses other than loopback."""
    out = subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True).stdout
    addrs = [line.split()[3].split("/")[0] for line in out.splitlines()]
    return [a for a in addrs if not a.startswith("127.")]


def _refused(address, port):
    try:
        with socket.create_connection((address, port), timeout=3):
            return False
    except OSError:
        return True


def _pids_with(text):
    """Pids whose command line contains `text`."""
    pids = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if text.encode() in cmdline.read_bytes():
                pids.append(int(cmdline.parent.name))
        except OSError:
            pass
    return pids


def _wait_for(predicate, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def test_listens_on_loopback_only(tmp_path):
    with worker.RemoteWorker(tmp_path / "w") as w:
        assert w.executor == f"grpc://127.0.0.1:{w.port}"
        addresses = _listening(w.port)
        assert addresses and set(addresses) == {"127.0.0.1"}, addresses
        for other in _other_addresses():
            assert _refused(other, w.port), f"the worker answers on {other}"
        assert not _refused("127.0.0.1", w.port)


def test_stop_ends_the_jvm(tmp_path):
    w = worker.RemoteWorker(tmp_path / "w").start()
    jvms = worker._children(w.proc.pid)
    assert jvms and set(jvms) <= set(_pids_with(str(tmp_path / "w" / "work")))
    w.stop()
    # Gone and reaped when stop returns, and the port with it.
    assert not [pid for pid in jvms if Path(f"/proc/{pid}").exists()]
    assert "127.0.0.1" not in _listening(w.port)
    w.stop()  # a second stop is harmless


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_worker_does_not_outlive_its_launcher(tmp_path, sig):
    root = tmp_path / "w"
    port = worker.free_port()
    launcher = subprocess.Popen(
        [sys.executable, worker.__file__, "run", "--root", str(root), "--port", str(port)],
        env=dict(os.environ, PYTHONPATH=str(HERE.parent.parent)),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert _wait_for(lambda: not _refused("127.0.0.1", port), 60), launcher.stdout
        assert _pids_with(str(root / "work"))
        launcher.send_signal(sig)
        launcher.wait(timeout=20)
        assert _wait_for(lambda: not _pids_with(str(root / "work"))), "the JVM outlived it"
    finally:
        launcher.kill()
        for pid in _pids_with(str(root / "work")):
            os.kill(pid, signal.SIGKILL)


def test_a_busy_port_is_reported_with_the_log(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(worker.WorkerError, match=f"port {port} on 127.0.0.1 is in use"):
            worker.RemoteWorker(tmp_path / "w", port=port).start()


@pytest.mark.parametrize("kw", [{"port": 0}, {"port": 70000}, {"port": "80"}, {"jobs": 0}])
def test_bad_arguments_are_named(tmp_path, kw):
    name, value = next(iter(kw.items()))
    with pytest.raises(worker.WorkerError, match=f"bad {name} {value!r}"):
        worker.RemoteWorker(tmp_path, **kw)


def test_actions_write_the_work_tree_and_the_checkpoint_store_only(tmp_path):
    w = worker.RemoteWorker(tmp_path / "w", store=tmp_path / "store")
    writable = [a.split("=", 1)[1] for a in w.argv() if a.startswith("--sandboxing_writable_path=")]
    assert writable == [str(w.work_dir), str(tmp_path / "store")]
    with w:
        assert (tmp_path / "store").is_dir()
        assert (tmp_path / "store").stat().st_mode & 0o777 == 0o700


def test_the_store_is_the_one_a_step_finds_without_home(tmp_path, monkeypatch):
    # A worker's action has no HOME and no XDG_CACHE_HOME; run_step then uses this root.
    monkeypatch.delenv("HOME", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert worker.RemoteWorker(tmp_path).store == run_store.default_root()


def test_build_script_refuses_a_source_it_cannot_rewrite(tmp_path):
    src = tmp_path / "RemoteWorker.java"
    src.write_text("class RemoteWorker { void f() { NettyServerBuilder.forAddress(x); } }\n")
    proc = subprocess.run(
        ["sh", str(HERE / "build_jar.sh"), "javac", "jar", "cp.jar", "sandbox", "out.jar"]
        + [str(src)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1
    assert "no longer has the two binds" in proc.stderr


def test_free_subnet_avoids_routed_networks(monkeypatch):
    used = [ipaddress.ip_network("10.0.0.0/9")]
    monkeypatch.setattr(namespace, "used_networks", lambda: used)
    for _ in range(20):
        net = namespace.free_subnet()
        assert net.prefixlen == 30 and net.subnet_of(ipaddress.ip_network("10.0.0.0/8"))
        assert not net.overlaps(used[0])
    monkeypatch.setattr(namespace, "used_networks", lambda: [ipaddress.ip_network("10.0.0.0/8")])
    with pytest.raises(namespace.HostError, match="no free /30"):
        namespace.free_subnet()


def test_namespace_host_hides_client_paths(tmp_path):
    client = tmp_path / "client"
    (client / "out").mkdir(parents=True)
    (client / "out" / "secret").write_text("client only\n")
    own = tmp_path / "own"
    own.mkdir()
    (own / "venv").write_text("the worker's\n")
    with namespace.NamespaceHost(hide=[client], binds={client / "image": own}) as host:
        seen = subprocess.run(
            host.wrap(["sh", "-c", f"ls -A {client}; cat {client}/image/venv"]),
            capture_output=True,
            text=True,
        )
        assert seen.stdout.split() == ["image", "the", "worker's"], seen
        with pytest.raises(namespace.HostError, match="under the hidden path"):
            worker.RemoteWorker(client / "w", host=host).start()
        with worker.RemoteWorker(tmp_path / "w", host=host, store=client / "runs") as w:
            # The actions' store is made where the worker looks, not on the client.
            made = subprocess.run(host.wrap(["test", "-d", str(client / "runs")]))
            assert made.returncode == 0 and not (client / "runs").exists()
            assert w.executor == f"grpc://{host.address}:{w.port}"
            assert ipaddress.ip_address(host.address) in host.subnet
            assert _listening(w.port) == []  # not in this network namespace
            assert _refused("127.0.0.1", w.port)
            assert not _refused(host.address, w.port)
    assert (client / "out" / "secret").read_text() == "client only\n"
    assert not Path(f"/sys/class/net/{host.outer_dev}").exists()


def test_namespace_host_refuses_missing_directories(tmp_path):
    with pytest.raises(namespace.HostError, match="not a directory"):
        namespace.NamespaceHost(hide=[tmp_path / "missing"])
