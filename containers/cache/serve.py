"""Run nginx as knlp's shared Bazel HTTP cache: configuration, credentials, process.

    serve.py config --listen 0.0.0.0:9092 --root /srv/knlp-cache > nginx.conf
    serve.py htpasswd USER >> /srv/knlp-cache/htpasswd      (password on stdin)
    serve.py run --root DIR --listen 127.0.0.1:9092         (foreground; Ctrl-C stops)
    serve.py run ... --tls-cert CERT.pem --tls-key KEY.pem  (HTTPS only)

One directory (`--root`) holds everything a server owns: `data/` (the cache
entries, under `data/<prefix>/ac/` and `data/<prefix>/cas/`), `run/` (pid file,
nginx temp files, the verifier's socket), `log/` and `htpasswd`. Reads are
anonymous and served by nginx from disk; writes need a user from `htpasswd`
(SHA-512 crypt lines) and nginx hands them to the verifier in this process,
which stores a body only if it is what its name says: a `cas/` body whose
sha256 is its name, an `ac/` body that parses as a Bazel `ActionResult` and
names only blobs that `cas/` already holds (containers/README.md, "The shared
cache").

The integration test and the benchmark use `CacheServer`, which starts nginx as
the current user in the foreground and stops it when the `with` block ends.
"""

import argparse
import base64
import ctypes
import getpass
import grp
import hashlib
import http.server
import os
import pwd
import re
import shutil
import signal
import socket
import socketserver
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

with warnings.catch_warnings():
    # `crypt` leaves the standard library in Python 3.13; knlp pins 3.11, and
    # it is the same libcrypt crypt() that nginx checks passwords with.
    warnings.simplefilter("ignore", DeprecationWarning)
    import crypt

TEMPLATE = Path(__file__).with_name("nginx.conf.in")
PREFIX_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
LISTEN_RE = re.compile(r"^(\d{1,3}(\.\d{1,3}){3}|\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):(\d{1,5})$")
DEFAULT_PREFIX = "knlp"
KINDS = ("ac", "cas")
HEX64_RE = re.compile(r"^[0-9a-f]{64}$")
# SHA-512 crypt rounds for new htpasswd lines. nginx runs crypt() on every
# authenticated request, so this is paid per upload: 5000 (glibc's default)
# costs about 1.5 ms here, 50000 about 70 ms.
HTPASSWD_ROUNDS = 5000
# htpasswd schemes nginx reads that are cheap to brute-force from a leaked file.
WEAK_SCHEMES = ("{SSHA}", "{SHA}", "{PLAIN}")
# prctl(2): the signal a process gets when the thread that forked it exits.
PR_SET_PDEATHSIG = 1


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


def check_tls(cert, key):
    """(cert, key) as resolved paths, or None for plain HTTP; both or neither."""
    if not cert and not key:
        return None
    if not cert or not key:
        raise CacheError("TLS needs both --tls-cert and --tls-key")
    paths = []
    for flag, value in (("--tls-cert", cert), ("--tls-key", key)):
        if not Path(value).is_file():
            raise CacheError(f"{flag} {value}: no such file; expected a PEM file")
        paths.append(Path(value).resolve())
    return tuple(paths)


def render_config(listen, root, prefix=DEFAULT_PREFIX, workers=1, tls=None, verify_socket=None):
    """The nginx.conf text for a server that owns directory `root`.

    `tls` is (cert, key) from check_tls, or None; `verify_socket` is the Unix
    socket of the write verifier (default `root/run/verify.sock`).
    """
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
        "VERIFY_SOCKET": str(verify_socket or root / "run" / "verify.sock"),
        "TLS_LISTEN": " ssl" if tls else "",
        "TLS_LINES": (
            f"        ssl_certificate {tls[0]};\n        ssl_certificate_key {tls[1]};\n"
            if tls
            else ""
        ),
    }
    text = TEMPLATE.read_text()
    for key, value in fields.items():
        text = text.replace(f"@{key}@", value)
    leftover = re.findall(r"@[A-Z_]+@", text.replace("@LIKE_THIS@", ""))
    if leftover:
        raise CacheError(f"nginx.conf.in has unfilled fields {leftover}")
    return text


def htpasswd_line(user, password, salt=None):
    """An htpasswd line in SHA-512 crypt (`$6$`), which nginx checks with crypt()."""
    if not user or ":" in user:
        raise CacheError(f"bad user name {user!r}; it must be non-empty and contain no ':'")
    if not password:
        raise CacheError("empty password")
    salt = salt or crypt.mksalt(crypt.METHOD_SHA512, rounds=HTPASSWD_ROUNDS)
    return f"{user}:{crypt.crypt(password, salt)}\n"


def weak_htpasswd_users(path):
    """Users whose htpasswd line uses a scheme in WEAK_SCHEMES (old {SSHA} lines)."""
    weak = []
    for line in Path(path).read_text().splitlines():
        user, _, hashed = line.partition(":")
        if hashed.startswith(WEAK_SCHEMES):
            weak.append(user)
    return weak


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


# -- what a write must be -----------------------------------------------------
#
# An `ac/` entry is a serialized build.bazel.remote.execution.v2.ActionResult.
# The schemas below name, per message, the fields it may hold: field number ->
# (wire type, what the value must be, how often it may occur). A value that is
# itself a message is checked against its schema; "hex" is a digest's sha256,
# "str" UTF-8 text. A field marked ONCE may not repeat: protobuf would merge the
# repeats, so a reader could see another digest than the one checked here.
# Messages marked open accept fields they do not name (newer Bazel versions add
# some) as long as those are well-formed.

_VARINT, _LEN = 0, 2
ONCE, MANY = "once", "many"
_ANY = ({}, True)
_DIGEST = ({1: (_LEN, "hex", ONCE), 2: (_VARINT, None, ONCE)}, True)
_OUTPUT_FILE = (
    {1: (_LEN, "str", ONCE), 2: (_LEN, _DIGEST, ONCE), 4: (_VARINT, None, ONCE)},
    True,
)
_OUTPUT_DIRECTORY = ({1: (_LEN, "str", ONCE), 3: (_LEN, _DIGEST, ONCE)}, True)
_ACTION_RESULT = (
    {
        2: (_LEN, _OUTPUT_FILE, MANY),
        3: (_LEN, _OUTPUT_DIRECTORY, MANY),
        4: (_VARINT, None, ONCE),  # exit_code
        5: (_LEN, None, ONCE),  # stdout_raw
        6: (_LEN, _DIGEST, ONCE),  # stdout_digest
        7: (_LEN, None, ONCE),  # stderr_raw
        8: (_LEN, _DIGEST, ONCE),  # stderr_digest
        9: (_LEN, _ANY, ONCE),  # execution_metadata
        10: (_LEN, _ANY, MANY),  # output_file_symlinks
        11: (_LEN, _ANY, MANY),  # output_directory_symlinks
        12: (_LEN, _ANY, MANY),  # output_symlinks
    },
    False,
)
# An output directory's Tree (a cas/ blob): its root Directory and the
# Directories below it, each with the files it holds.
_FILE_NODE = (
    {1: (_LEN, "str", ONCE), 2: (_LEN, _DIGEST, ONCE), 4: (_VARINT, None, ONCE)},
    True,
)
_DIRECTORY = ({1: (_LEN, _FILE_NODE, MANY), 2: (_LEN, _ANY, MANY), 3: (_LEN, _ANY, MANY)}, True)
_TREE = ({1: (_LEN, _DIRECTORY, ONCE), 2: (_LEN, _DIRECTORY, MANY)}, True)
# The blob of zero bytes. Bazel names it (an action's empty stdout) but never
# uploads it, since its content is known; it counts as stored.
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


def _varint(data, i):
    value = shift = 0
    while True:
        if i >= len(data) or shift > 63:
            raise ValueError("truncated varint")
        byte = data[i]
        i += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, i
        shift += 7


def _fields(data):
    """(field number, wire type, value) of each field of one protobuf message."""
    i = 0
    while i < len(data):
        key, i = _varint(data, i)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise ValueError("field number 0")
        if wire == _VARINT:
            value, i = _varint(data, i)
        elif wire == _LEN:
            size, i = _varint(data, i)
            value, i = data[i : i + size], i + size
        elif wire in (1, 5):  # fixed64, fixed32
            size = 8 if wire == 1 else 4
            value, i = data[i : i + size], i + size
        else:
            raise ValueError(f"wire type {wire}")
        if i > len(data):
            raise ValueError("truncated field")
        yield number, wire, value


def _check_message(data, schema, where):
    fields, open_ = schema
    seen = set()
    for number, wire, value in _fields(data):
        if number not in fields:
            if open_:
                continue
            raise ValueError(f"{where} has no field {number}")
        want, kind, count = fields[number]
        if wire != want:
            raise ValueError(f"{where} field {number} has wire type {wire}, expected {want}")
        if count == ONCE and number in seen:
            raise ValueError(f"{where} field {number} occurs twice; it may occur once")
        seen.add(number)
        if kind == "hex":
            if not HEX64_RE.match(value.decode("ascii", "replace")):
                raise ValueError(f"{where} field {number} is not a sha256 digest")
        elif kind == "str":
            value.decode("utf-8")
        elif kind is not None:
            _check_message(value, kind, f"{where}.{number}")


def check_action_result(data):
    """Raises CacheError unless `data` parses as a Bazel ActionResult protobuf."""
    try:
        _check_message(bytes(data), _ACTION_RESULT, "ActionResult")
    except (ValueError, UnicodeDecodeError) as e:
        raise CacheError(f"not a Bazel ActionResult protobuf: {e}") from None


def _value(message, number, default=b""):
    """The value of field `number` of a checked message (each ONCE field occurs once)."""
    return next((v for n, _, v in _fields(message) if n == number), default)


def _digest(message, what):
    """(sha256, size) of a Digest message; CacheError if it has no hash."""
    sha256 = _value(message, 1).decode()
    if not sha256:
        raise CacheError(f"the entry names {what} without a digest")
    return sha256, _value(message, 2, 0)


def named_blobs(result):
    """(what, sha256, size, is a Tree) of each blob a checked ActionResult names:
    its output files, each output directory's Tree, stdout and stderr."""
    blobs = []
    for number, _, value in _fields(bytes(result)):
        if number == 2:
            what = f"output file {_value(value, 1).decode()}"
            blobs.append((what, *_digest(_value(value, 2), what), False))
        elif number == 3:
            what = f"the tree of output directory {_value(value, 1).decode()}"
            blobs.append((what, *_digest(_value(value, 3), what), True))
        elif number in (6, 8):
            what = "stdout" if number == 6 else "stderr"
            blobs.append((what, *_digest(value, what), False))
    return blobs


def _tree_files(tree, what):
    """(what, sha256, size) of each file in a Tree blob."""
    try:
        _check_message(tree, _TREE, "Tree")
    except (ValueError, UnicodeDecodeError) as e:
        raise CacheError(f"{what} is not a Bazel Tree protobuf: {e}") from None
    files = []
    directories = (value for number, _, value in _fields(tree) if number in (1, 2))
    for directory in directories:
        for number, _, node in _fields(directory):
            if number == 1:
                file_what = f"file {_value(node, 1).decode()} in {what}"
                files.append((file_what, *_digest(_value(node, 2), file_what)))
    return files


def _stored_blob(cas_dir, sha256, size, what):
    """The path of blob `sha256` in `cas_dir` (None for the empty blob).

    CacheError if it is not there or has another size than the digest says.
    """
    if sha256 == EMPTY_SHA256 and size == 0:
        return None
    path = Path(cas_dir) / sha256
    try:
        stored = path.stat().st_size
    except FileNotFoundError:
        raise CacheError(
            f"the entry names {what} (sha256 {sha256}, {size} bytes), which cas/ does not "
            f"hold; upload every blob an action result names before the result"
        ) from None
    if stored != size:
        raise CacheError(
            f"the entry names {what} as {size} bytes, but cas/{sha256} holds {stored} bytes"
        )
    return path


def check_blobs_stored(result, cas_dir):
    """Raises CacheError unless every blob ActionResult `result` names is in `cas_dir`.

    Those are named_blobs(result) and the files in each output directory's
    Tree; the empty blob counts as stored. `result` must have passed
    check_action_result.
    """
    for what, sha256, size, is_tree in named_blobs(result):
        path = _stored_blob(cas_dir, sha256, size, what)
        if is_tree:
            tree = path.read_bytes() if path else b""
            for file_what, file_sha256, file_size in _tree_files(tree, what):
                _stored_blob(cas_dir, file_sha256, file_size, file_what)


def entry_path(data_dir, url_path, prefix):
    """(kind, file) for `/<prefix>/<kind>/<sha256>`; CacheError for any other path."""
    parts = url_path.split("/")
    if (
        len(parts) != 4
        or parts[:2] != ["", prefix]
        or parts[2] not in KINDS
        or not HEX64_RE.match(parts[3])
    ):
        raise CacheError(f"bad path {url_path!r}; expected /{prefix}/ac/<sha256> or /cas/<sha256>")
    return parts[2], Path(data_dir) / parts[2] / parts[3]


def store(data_dir, url_path, prefix, body_stream, length):
    """Checks one upload and moves it into place; returns True if it was new.

    The body goes to a temporary file under `data_dir/.tmp` (never served: its
    name is not a hash), hashed on the way; it replaces the entry only when
    complete and correct, so a cut upload or a wrong body leaves nothing.
    """
    kind, dest = entry_path(data_dir, url_path, prefix)
    tmp_dir = Path(data_dir) / ".tmp"
    tmp_dir.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    fd, tmp = tempfile.mkstemp(dir=tmp_dir)
    try:
        with os.fdopen(fd, "wb") as f:
            left = length
            while left > 0:
                block = body_stream.read(min(left, 1 << 20))
                if not block:
                    raise CacheError(f"upload cut after {length - left} of {length} bytes")
                digest.update(block)
                f.write(block)
                left -= len(block)
            f.flush()
            os.fsync(f.fileno())
        if kind == "cas" and digest.hexdigest() != dest.name:
            raise CacheError(f"body has sha256 {digest.hexdigest()}, not its name {dest.name}")
        if kind == "ac":
            result = Path(tmp).read_bytes()
            check_action_result(result)
            check_blobs_stored(result, Path(data_dir) / "cas")
        os.chmod(tmp, 0o644)
        dest.parent.mkdir(parents=True, exist_ok=True)
        new = not dest.exists()
        os.replace(tmp, dest)
        return new
    except BaseException:
        os.unlink(tmp)
        raise


class _VerifyHandler(http.server.BaseHTTPRequestHandler):
    """nginx's upstream for authenticated writes (PUT, DELETE)."""

    protocol_version = "HTTP/1.1"

    def _reply(self, code, message=""):
        # nginx speaks HTTP/1.0 to its upstream: one request per connection.
        self.close_connection = True
        body = (message + "\n").encode() if message else b""
        self.send_response(code)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        if body:
            self.wfile.write(body)

    def do_PUT(self):  # noqa: N802 (http.server's naming)
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            return self._reply(411, "Content-Length required")
        try:
            new = store(
                self.server.data_dir, self.path, self.server.prefix, self.rfile, int(length)
            )
        except CacheError as e:
            return self._reply(400, str(e))
        self._reply(201 if new else 204)

    def do_DELETE(self):  # noqa: N802
        try:
            _, dest = entry_path(self.server.data_dir, self.path, self.server.prefix)
        except CacheError as e:
            return self._reply(400, str(e))
        try:
            dest.unlink()
        except FileNotFoundError:
            return self._reply(404)
        self._reply(204)

    def log_message(self, *args):
        pass  # nginx's access.log records every request


class _VerifyServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # nginx may close its end once it has the status line; the entry is
        # already stored or refused by then, so that is not an error.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def _socket_path(run_dir):
    """`run_dir/verify.sock`, or a private temporary one when that is too long.

    A Unix socket's path is limited to 107 bytes; Bazel's test directories are
    often longer. Both places are readable by this user only.
    """
    path = Path(run_dir).resolve() / "verify.sock"
    if len(str(path)) < 100:
        return path
    return Path(tempfile.mkdtemp(prefix="knlp-cache-")) / "verify.sock"


def _stopped_with_parent():
    """A preexec_fn that makes the kernel send the child SIGTERM (nginx: stop master
    and workers) when the thread that started it ends, however it ends.

    serve.py stops nginx itself on SIGTERM and SIGINT; this covers SIGKILL, an
    OOM kill or a crash, after which nginx would otherwise keep the port and
    the pid file with no verifier behind it. Linux only (prctl).
    """
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    prctl.argtypes = [ctypes.c_int] + [ctypes.c_ulong] * 4
    parent = os.getpid()

    def preexec():
        # Runs in the child between fork and exec: prepared above, it only calls.
        if prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return preexec


def _running_nginx(pid_file):
    """The pid in `pid_file` if that process is alive and is an nginx, else None."""
    try:
        pid = int(Path(pid_file).read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return None
    return pid if b"nginx" in cmdline else None


class CacheServer:
    """nginx serving a Bazel cache from `root`, started and stopped by this object.

    with CacheServer(tmp, users={"ci": "secret"}) as cache:
        cache.url          # http://127.0.0.1:PORT/knlp

    `users` (name -> password) replaces `root/htpasswd`; None keeps the file there.
    nginx stops when the thread that called start() ends, even if it is killed
    (`_stopped_with_parent`), so start it from a thread that outlives the server
    (the main thread does).
    """

    def __init__(
        self,
        root,
        users=None,
        port=None,
        host="127.0.0.1",
        prefix=DEFAULT_PREFIX,
        tls_cert=None,
        tls_key=None,
    ):
        self.root = Path(root)
        self.users = users
        self.host = host
        self.port = port or free_port()
        self.prefix = check_prefix(prefix)
        self.tls = check_tls(tls_cert, tls_key)
        self.proc = None
        self.verifier = None

    @property
    def url(self):
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}/{self.prefix}"

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
        for user in weak_htpasswd_users(htpasswd):
            print(
                f"serve.py: warning: {htpasswd}: the line for {user!r} uses salted SHA-1, "
                f"cheap to brute-force if the file leaks; replace it with the output of "
                f"`serve.py htpasswd {user}`",
                file=sys.stderr,
            )
        pid_file = self.root / "run" / "nginx.pid"
        running = _running_nginx(pid_file)
        if running:
            raise CacheError(
                f"an nginx (pid {running}) already serves from {self.root} "
                f"(pid file {pid_file}); stop it (kill {running}) or use another --root"
            )
        pid_file.unlink(missing_ok=True)  # stale: its process is gone
        self._start_verifier()
        conf = self.root / "nginx.conf"
        conf.write_text(
            render_config(
                f"{self.host}:{self.port}",
                self.root,
                self.prefix,
                tls=self.tls,
                verify_socket=self.verifier.server_address,
            )
        )
        log = open(self.root / "log" / "stderr.log", "ab")
        self.proc = subprocess.Popen(
            [nginx, "-p", str(self.root), "-c", str(conf), "-e", str(self.root / "log/error.log")],
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=_stopped_with_parent(),
        )
        log.close()
        if not _wait_listening(self.host, self.port, self.proc, timeout):
            self.stop()
            errors = (self.root / "log" / "error.log").read_text(errors="replace")[-2000:]
            raise CacheError(f"nginx did not start on {self.host}:{self.port}:\n{errors}")
        return self

    def _start_verifier(self):
        sock = _socket_path(self.root / "run")
        sock.unlink(missing_ok=True)
        self.verifier = _VerifyServer(str(sock), _VerifyHandler)
        self.verifier.data_dir = self.data_dir
        self.verifier.prefix = self.prefix
        threading.Thread(target=self.verifier.serve_forever, daemon=True).start()

    def stop(self, timeout=10):
        """Stops nginx (master and workers), then the verifier; safe to call twice."""
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
            self.proc = None
        if self.verifier is not None:
            self.verifier.shutdown()
            self.verifier.server_close()
            Path(self.verifier.server_address).unlink(missing_ok=True)
            self.verifier = None

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
    r.add_argument("--tls-cert", help="PEM certificate: serve HTTPS only (with --tls-key)")
    r.add_argument("--tls-key", help="PEM private key of --tls-cert")
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
            server = CacheServer(
                Path(args.root),
                port=int(port),
                host=host,
                prefix=args.prefix,
                tls_cert=args.tls_cert,
                tls_key=args.tls_key,
            )
            # SIGTERM (systemd, kill) stops nginx the way Ctrl-C does.
            signal.signal(signal.SIGTERM, signal.default_int_handler)
            try:
                server.start()
                print(f"serving {server.url} from {server.data_dir} (Ctrl-C stops)", flush=True)
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
