"""Start and stop Bazel's remote worker, the Remote Execution API engine of knlp's tests.

    worker.py run [--root DIR] [--port 8980] [--jobs 2]    (foreground; Ctrl-C stops)

The worker is Bazel 4.2.3's own (`src/tools/remote` of Debian's
bazel-bootstrap-source), compiled by //containers/remote:worker_jar to listen on
127.0.0.1 only. It serves the CAS, the action cache and execution over gRPC:
`bazel build --config=remote-exec-local` sends each action to it
(containers/README.md, "Remote execution").

One directory (`--root`, default `~/.cache/knlp/remote-worker`) holds what a
worker owns: `work/` (one exec root per running action, removed when it ends),
`cas/` (blobs and action results), `lib/` (the jar it runs) and `log/worker.log`.
One worker per root: starting one empties `work/`, which a killed worker
leaves holding the exec roots of the actions it was running.
Actions run in Bazel's linux-sandbox: the file system read-only except `work/`,
the checkpoint store of training steps (below), and an empty tmpfs on /tmp
unless the root itself is below /tmp.

A training step's action keeps its checkpoints in experiments/store.py's store
on the machine that runs it, so that the same action sent again resumes there.
A worker passes an action only the environment the client declared, without
HOME or XDG_CACHE_HOME, so that store is `~/.cache/knlp/runs` of the user the
worker runs as (`action_store_root()`); the worker creates it and leaves it
writable to its actions.

The worker runs as pid 1 of a PID namespace of its own (`unshare --pid --fork
--kill-child`), and the `unshare` process gets SIGKILL when its launcher dies
(PR_SET_PDEATHSIG), so neither the JVM nor an action it started outlives the
launcher, even a launcher killed with SIGKILL. Tests use `RemoteWorker`:

    with RemoteWorker(tmp) as worker:
        worker.executor   # grpc://127.0.0.1:PORT

and pass `host=` (containers/remote/namespace.py) to run it on a second host.
"""

import argparse
import ctypes
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

DEFAULT_PORT = 8980
MAIN_CLASS = "com.google.devtools.build.remote.worker.RemoteWorker"
SERVER_JAR = Path("/usr/share/bazel/A-server.jar")
JAR_NAME = "remote_worker.jar"
HERE = Path(__file__).resolve().parent
# Where `bazel build //containers/remote:worker_jar` leaves the jar, for plain pytest.
BUILT_JAR = HERE.parent.parent / "bazel-bin" / "containers" / "remote" / JAR_NAME
_PR_SET_PDEATHSIG = 1


class WorkerError(Exception):
    """A failure with a message meant for the user."""


def find_jar():
    """The compiled worker: beside this file in runfiles, else in bazel-bin."""
    for candidate in (Path(__file__).with_name(JAR_NAME), BUILT_JAR):
        if candidate.is_file():
            return candidate
    raise WorkerError(
        f"{JAR_NAME} not found beside {__file__} or at {BUILT_JAR}; "
        "build it with `bazel build //containers/remote:worker_jar`"
    )


def find_java():
    java = shutil.which("java") or "/usr/bin/java"
    if not Path(java).exists():
        raise WorkerError("java not found; run ./setup.sh (bazel-bootstrap brings a JDK)")
    return java


def free_port(host="127.0.0.1"):
    """A TCP port on `host` that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def check_port(port):
    if not isinstance(port, int) or not 0 < port < 65536:
        raise WorkerError(f"bad port {port!r}; expected an integer from 1 to 65535")
    return port


def check_jobs(jobs):
    if not isinstance(jobs, int) or not 1 <= jobs <= 256:
        raise WorkerError(f"bad jobs {jobs!r}; expected an integer from 1 to 256")
    return jobs


def _die_with_parent():
    """preexec_fn: SIGKILL this child when the thread that started it exits."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        os._exit(127)


def action_store_root():
    """The checkpoint store (experiments/store.py) of a training step that a worker runs.

    An action on a worker has neither HOME nor XDG_CACHE_HOME, so the store is
    under the home of the worker's user in the user database.
    """
    return Path(pwd.getpwuid(os.geteuid()).pw_dir) / ".cache" / "knlp" / "runs"


class Loopback:
    """The worker on this machine, on 127.0.0.1, in a PID namespace of its own."""

    address = "127.0.0.1"

    def wrap(self, argv):
        user = [] if os.geteuid() == 0 else ["--map-current-user"]
        return ["unshare", *user, "--pid", "--fork", "--kill-child=SIGKILL", "--", *argv]

    def check_root(self, root):
        """Every path is visible to the worker here."""

    def make_store(self, path):
        """The actions' checkpoint store, here the user's own (mode 0700)."""
        Path(path).mkdir(mode=0o700, parents=True, exist_ok=True)

    def check_port(self, port):
        """Refuses a port that something on this machine listens on already."""
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((self.address, port))
            except OSError as e:
                in_use = f"port {port} on {self.address} is in use ({e.strerror})"
                raise WorkerError(in_use) from None


def _children(pid):
    """The pids of `pid`'s children (the JVM, for the unshare that forked it)."""
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            found += [int(c) for c in task.read_text().split()]
        except OSError:
            pass
    return found


def _wait_listening(address, port, proc, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with socket.create_connection((address, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.1)
    return False


class RemoteWorker:
    """Bazel's remote worker serving from `root`, started and stopped by this object.

    `host` decides where it runs: `Loopback()` (default) or a
    `namespace.NamespaceHost`, which gives it a network and mount namespace.
    """

    def __init__(self, root, port=None, jobs=2, host=None, sandboxing=True, jar=None, store=None):
        self.root = Path(root).absolute()
        self.host = host or Loopback()
        # Where the worker's actions see the checkpoint store (on its host).
        self.store = Path(store).absolute() if store else action_store_root()
        self.port = check_port(port) if port is not None else free_port()
        self.jobs = check_jobs(jobs)
        self.sandboxing = sandboxing
        self.jar = Path(jar) if jar else None
        self.proc = None

    @property
    def executor(self):
        """The value of Bazel's --remote_executor for this worker."""
        return f"grpc://{self.host.address}:{self.port}"

    @property
    def cas_dir(self):
        return self.root / "cas"

    @property
    def work_dir(self):
        return self.root / "work"

    @property
    def log(self):
        return self.root / "log" / "worker.log"

    def argv(self):
        """The java command line, without the host's wrapper."""
        args = [
            find_java(),
            f"-Dknlp.listen_address={self.host.address}",
            # Every worker is pid 1 of its namespace: their perf files would clash.
            "-XX:-UsePerfData",
            "-cp",
            f"{self.root / 'lib' / JAR_NAME}:{SERVER_JAR}",
            MAIN_CLASS,
            f"--listen_port={self.port}",
            f"--work_path={self.work_dir}",
            f"--cas_path={self.cas_dir}",
            f"--jobs={self.jobs}",
        ]
        if self.sandboxing:
            args += ["--sandboxing", f"--sandboxing_writable_path={self.work_dir}"]
            args.append(f"--sandboxing_writable_path={self.store}")
            if Path("/tmp") not in self.root.parents:
                args.append("--sandboxing_tmpfs_dir=/tmp")
        return args

    def start(self, timeout=60):
        if not SERVER_JAR.is_file():
            raise WorkerError(f"{SERVER_JAR} not found; run ./setup.sh (bazel-bootstrap)")
        self.host.check_root(self.root)
        self.host.check_port(self.port)
        # A killed worker leaves the exec roots of its running actions behind.
        if self.work_dir.exists():
            shutil.rmtree(self.work_dir)
        for sub in ("work", "cas", "lib", "log"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        # The sandbox refuses to start an action when a writable path is missing.
        self.host.make_store(self.store)
        # The worker runs its own copy, so nothing it needs lies in the client's
        # output base, which a second host hides.
        shutil.copyfile(self.jar or find_jar(), self.root / "lib" / JAR_NAME)
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                self.host.wrap(self.argv()),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,
            )
        try:
            listening = _wait_listening(self.host.address, self.port, self.proc, timeout)
        except BaseException:
            self.stop()
            raise
        if not listening:
            code = self.proc.poll()
            self.stop()
            tail = self.log.read_text(errors="replace")[-3000:]
            state = f"exited {code}" if code is not None else f"did not listen in {timeout} s"
            raise WorkerError(
                f"the remote worker {state} on {self.host.address}:{self.port}; "
                f"{self.log}:\n{tail}"
            )
        return self

    def stop(self, timeout=10):
        """Kills the worker and everything it started (its PID namespace); safe twice.

        Returns once the JVM has been reaped, so its port is free and no action runs.
        """
        if self.proc is None:
            return
        # SIGKILL to the JVM, pid 1 of the namespace, ends every action with it;
        # unshare, its parent, reaps it and exits. (unshare ignores SIGTERM, and
        # killing it first would leave the JVM dying after this returns.)
        jvms = _children(self.proc.pid)
        for pid in jvms:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if not jvms and self.proc.poll() is None:
            self.proc.kill()
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise WorkerError(f"the remote worker (pid {self.proc.pid}) did not stop") from None
        self.proc = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def default_root():
    """`$XDG_CACHE_HOME/knlp/remote-worker`, else `~/.cache/knlp/remote-worker`."""
    cache = os.environ.get("XDG_CACHE_HOME", "")
    base = Path(cache) if cache.startswith("/") else Path.home() / ".cache"
    return base / "knlp" / "remote-worker"


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    sub = parser.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="run a worker on 127.0.0.1 in the foreground")
    r.add_argument("--root", type=Path, default=None, help="default: " + str(default_root()))
    r.add_argument("--port", type=int, default=DEFAULT_PORT)
    r.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args(argv)
    root = args.root or default_root()
    if not root.is_absolute():
        # Under `bazel run` the working directory is the runfiles tree.
        root = Path(os.environ.get("BUILD_WORKING_DIRECTORY", ".")) / root
    # SIGTERM (systemd, kill) stops the worker the way Ctrl-C does.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    worker = RemoteWorker(root, port=args.port, jobs=args.jobs)
    try:
        worker.start()
        print(
            f"remote worker: {worker.executor}, work and CAS under {root}, "
            f"training checkpoints in {worker.store}, log {worker.log} (Ctrl-C stops)",
            flush=True,
        )
        worker.proc.wait()
        print(f"worker.py: the worker exited; see {worker.log}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    except WorkerError as e:
        print(f"worker.py: {e}", file=sys.stderr)
        return 2
    finally:
        worker.stop()


if __name__ == "__main__":
    sys.exit(main())
