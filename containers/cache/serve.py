"""Run nginx as knlp's shared Bazel HTTP cache: configuration, credentials, process.

    serve.py config --listen 0.0.0.0:9092 --root /srv/knlp-cache > nginx.conf
    serve.py htpasswd USER >> /srv/knlp-cache/htpasswd      (password on stdin)
    serve.py run --root DIR --listen 127.0.0.1:9092         (foreground; Ctrl-C stops)

One directory (`--root`) holds everything a server owns: `data/` (the cache
entries, under `data/<prefix>/ac/` and `data/<prefix>/cas/`), `run/` (pid file,
nginx temp files), `log/` and `htpasswd`. Reads are anonymous; writes need a
user from `htpasswd` (containers/cache/README section in containers/README.md).

The integration test and the benchmark use `CacheServer`, which starts nginx as
the current user in the foreground and stops it when the `with` block ends.
"""

import argparse
import base64
import getpass
import grp
import hashlib
import os
import pwd
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

TEMPLATE = Path(__file__).with_name("nginx.conf.in")
PREFIX_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
LISTEN_RE = re.compile(r"^(\d{1,3}(\.\d{1,3}){3}|\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):(\d{1,5})$")
DEFAULT_PREFIX = "knlp"


class CacheError(Exception):
    """A failure with a message meant for the user."""


def find_nginx():
    for candidate in ("/usr/sbin/nginx", shutil.which("nginx")):
        if candidate and Path(candidate).exists():
            return candidate
    raise CacheError("nginx not found; run ./setup.sh (it installs nginx and its WebDAV module)")


def check_listen(listen):
    m = LISTEN_RE.match(listen)
    if not m or not 0 < int(m.group(3)) < 65536:
        raise CacheError(f"bad --listen {listen!r}; expected HOST:PORT, e.g. 127.0.0.1:9092")
    return listen


def check_prefix(prefix):
    if not PREFIX_RE.match(prefix):
        raise CacheError(f"bad prefix {prefix!r}; expected letters, digits, '-' or '_'")
    return prefix


def render_config(listen, root, prefix=DEFAULT_PREFIX, workers=1):
    """The nginx.conf text for a server that owns directory `root`."""
    root = Path(root).resolve()
    user_line = ""
    if os.geteuid() == 0:
        # A root master would hand requests to `nobody`, which cannot write the
        # data directory; run the workers as the user who owns it.
        user_line = f"user {pwd.getpwuid(os.getuid()).pw_name} {grp.getgrgid(os.getgid()).gr_name};"
    fields = {
        "USER_LINE": user_line,
        "WORKERS": str(int(workers)),
        "PID_FILE": str(root / "run" / "nginx.pid"),
        "LOG_DIR": str(root / "log"),
        "RUN_DIR": str(root / "run"),
        "LISTEN": check_listen(listen),
        "PREFIX": check_prefix(prefix),
        "DATA_DIR": str(root / "data"),
        "HTPASSWD": str(root / "htpasswd"),
    }
    text = TEMPLATE.read_text()
    for key, value in fields.items():
        text = text.replace(f"@{key}@", value)
    leftover = re.findall(r"@[A-Z_]+@", text.replace("@LIKE_THIS@", ""))
    if leftover:
        raise CacheError(f"nginx.conf.in has unfilled fields {leftover}")
    return text


def htpasswd_line(user, password, salt=None):
    """An htpasswd line in nginx's salted-SHA1 scheme ({SSHA}), no external tool needed."""
    if not user or ":" in user:
        raise CacheError(f"bad user name {user!r}; it must be non-empty and contain no ':'")
    if not password:
        raise CacheError("empty password")
    salt = salt if salt is not None else secrets.token_bytes(8)
    digest = hashlib.sha1(password.encode() + salt).digest()
    return f"{user}:{{SSHA}}{base64.b64encode(digest + salt).decode()}\n"


def basic_auth_header(user, password):
    """The value of an Authorization header for HTTP basic auth."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_listening(host, port, proc, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


class CacheServer:
    """nginx serving a Bazel cache from `root`, started and stopped by this object.

    with CacheServer(tmp, users={"ci": "secret"}) as cache:
        cache.url          # http://127.0.0.1:PORT/knlp

    `users` (name -> password) replaces `root/htpasswd`; None keeps the file there.
    """

    def __init__(self, root, users=None, port=None, host="127.0.0.1", prefix=DEFAULT_PREFIX):
        self.root = Path(root)
        self.users = users
        self.host = host
        self.port = port or free_port()
        self.prefix = check_prefix(prefix)
        self.proc = None

    @property
    def url(self):
        return f"http://{self.host}:{self.port}/{self.prefix}"

    @property
    def data_dir(self):
        return self.root / "data" / self.prefix

    def start(self, timeout=10):
        nginx = find_nginx()
        for sub in ("data", "run", "log"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        htpasswd = self.root / "htpasswd"
        if self.users is not None:
            htpasswd.write_text("".join(htpasswd_line(u, p) for u, p in self.users.items()))
        elif not htpasswd.exists():
            raise CacheError(f"{htpasswd} is missing; create it with `serve.py htpasswd USER`")
        conf = self.root / "nginx.conf"
        conf.write_text(render_config(f"{self.host}:{self.port}", self.root, self.prefix))
        log = open(self.root / "log" / "stderr.log", "ab")
        self.proc = subprocess.Popen(
            [nginx, "-p", str(self.root), "-c", str(conf), "-e", str(self.root / "log/error.log")],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        if not _wait_listening(self.host, self.port, self.proc, timeout):
            self.stop()
            errors = (self.root / "log" / "error.log").read_text(errors="replace")[-2000:]
            raise CacheError(f"nginx did not start on {self.host}:{self.port}:\n{errors}")
        return self

    def stop(self, timeout=10):
        """Stops nginx (master and workers); safe to call twice."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def entries(self):
        """Number of files under ac/ and cas/."""
        count = {}
        for kind in ("ac", "cas"):
            d = self.data_dir / kind
            count[kind] = sum(1 for p in d.iterdir() if p.is_file()) if d.is_dir() else 0
        return count

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    sub = parser.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("config", help="print nginx.conf for a server owning --root")
    c.add_argument("--listen", default="0.0.0.0:9092")
    c.add_argument("--root", required=True)
    c.add_argument("--prefix", default=DEFAULT_PREFIX)
    c.add_argument("--workers", type=int, default=4)
    h = sub.add_parser("htpasswd", help="print an htpasswd line; the password is read from stdin")
    h.add_argument("user")
    r = sub.add_parser("run", help="run a cache in the foreground until interrupted")
    r.add_argument("--root", required=True)
    r.add_argument("--listen", default="127.0.0.1:9092")
    r.add_argument("--prefix", default=DEFAULT_PREFIX)
    args = parser.parse_args(argv)
    try:
        if args.cmd == "config":
            sys.stdout.write(render_config(args.listen, args.root, args.prefix, args.workers))
        elif args.cmd == "htpasswd":
            if sys.stdin.isatty():
                password = getpass.getpass(f"password for {args.user}: ")
            else:
                password = sys.stdin.readline().rstrip("\n")
            sys.stdout.write(htpasswd_line(args.user, password))
        else:
            host, port = check_listen(args.listen).rsplit(":", 1)
            server = CacheServer(Path(args.root), port=int(port), host=host, prefix=args.prefix)
            server.start()
            print(f"serving {server.url} from {server.data_dir} (Ctrl-C stops)", flush=True)
            try:
                server.proc.wait()
            except KeyboardInterrupt:
                pass
            finally:
                server.stop()
    except CacheError as e:
        print(f"serve.py: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
