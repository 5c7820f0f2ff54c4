"""Tests of serve.py: the nginx configuration, the credentials, the WebDAV rules."""

import base64
import hashlib
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
import warnings
from pathlib import Path

import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import crypt

from containers.cache import serve


def test_config_has_the_cache_settings(tmp_path):
    text = serve.render_config("127.0.0.1:9092", tmp_path, "knlp")
    assert "listen 127.0.0.1:9092;" in text
    assert "ssl" not in text
    assert 'location ~ "^/knlp/(ac|cas)/[0-9a-f]{64}$" {' in text
    for line in (
        f"proxy_pass http://unix:{tmp_path.resolve()}/run/verify.sock:;",
        "client_max_body_size 0;",
        "limit_except GET HEAD {",
        f"auth_basic_user_file {tmp_path.resolve()}/htpasswd;",
        f"root {tmp_path.resolve()}/data;",
    ):
        assert line in text
    assert "@" not in text.replace("@LIKE_THIS@", "")


def test_config_is_valid_for_nginx(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "log").mkdir()
    (tmp_path / "htpasswd").write_text(serve.htpasswd_line("u", "p"))
    conf = tmp_path / "nginx.conf"
    conf.write_text(serve.render_config("127.0.0.1:9092", tmp_path))
    proc = subprocess.run(
        [serve.find_nginx(), "-t", "-p", str(tmp_path), "-c", str(conf), "-e", str(tmp_path / "e")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("listen", ["9092", "host:", "1.2.3.4:70000", "a b:80"])
def test_bad_listen_is_named(listen, tmp_path):
    with pytest.raises(serve.CacheError, match="bad --listen"):
        serve.render_config(listen, tmp_path)


@pytest.mark.parametrize("prefix", ["", "a/b", "../x", "-x"])
def test_bad_prefix_is_named(prefix, tmp_path):
    with pytest.raises(serve.CacheError, match="bad prefix"):
        serve.render_config("127.0.0.1:1", tmp_path, prefix)


def test_htpasswd_line_is_sha512_crypt():
    line = serve.htpasswd_line("writer", "s3cret")
    user, hashed = line.strip().split(":", 1)
    assert user == "writer" and not hashed.startswith("{SSHA}")
    assert hashed.startswith(f"$6$rounds={serve.HTPASSWD_ROUNDS}$")
    assert crypt.crypt("s3cret", hashed) == hashed
    assert crypt.crypt("wrong", hashed) != hashed
    assert serve.htpasswd_line("writer", "s3cret") != line  # a fresh salt each time
    with pytest.raises(serve.CacheError, match="bad user name"):
        serve.htpasswd_line("a:b", "x")
    with pytest.raises(serve.CacheError, match="empty password"):
        serve.htpasswd_line("a", "")


def ssha_line(user, password, salt=b"12345678"):
    """An old-style htpasswd line (salted SHA-1), as serve.py wrote them before."""
    digest = hashlib.sha1(password.encode() + salt).digest()
    return f"{user}:{{SSHA}}{base64.b64encode(digest + salt).decode()}\n"


def _status(method, url, body=None, auth=None, context=None):
    req = urllib.request.Request(url, data=body, method=method)
    if auth:
        req.add_header("Authorization", auth)
    try:
        with urllib.request.urlopen(req, timeout=10, context=context) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def _field(number, wire, payload):
    """One protobuf field: key, then a varint or a length-delimited payload."""

    def varint(n):
        out = b""
        while True:
            out += bytes([(n & 0x7F) | (0x80 if n > 0x7F else 0)])
            n >>= 7
            if not n:
                return out

    if wire == 0:
        return varint(number << 3) + varint(payload)
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def digest(content, size=None):
    """A serialized Digest of `content` (its size unless `size` says otherwise)."""
    size = len(content) if size is None else size
    return _field(1, 2, hashlib.sha256(content).hexdigest().encode()) + _field(2, 0, size)


def action_result(content=b"an output"):
    """A serialized ActionResult with one output file and exit code 0."""
    output_file = _field(1, 2, b"bazel-out/k8-fastbuild/bin/out") + _field(2, 2, digest(content))
    return _field(2, 2, output_file) + _field(4, 0, 0)


def directory_result(tree):
    """A serialized ActionResult with one output directory, bazel-out/bin/dir."""
    output_directory = _field(1, 2, b"bazel-out/bin/dir") + _field(3, 2, digest(tree))
    return _field(3, 2, output_directory) + _field(4, 0, 0)


def tree_of(root_files, child_files=()):
    """A serialized Tree: a root Directory and one child Directory, with these files
    ({name: content})."""

    def directory(files):
        return b"".join(
            _field(1, 2, _field(1, 2, name.encode()) + _field(2, 2, digest(content)))
            for name, content in files.items()
        )

    children = _field(2, 2, directory(dict(child_files))) if child_files else b""
    return _field(1, 2, directory(root_files)) + children


def test_action_result_check():
    serve.check_action_result(action_result())
    stdout = _field(6, 2, digest(b"out"))
    serve.check_action_result(stdout)
    for bad in (
        b"not a real action result",
        _field(1, 2, b"x"),  # field 1 is reserved in ActionResult
        _field(2, 0, 7),  # output_files must be a message
        _field(2, 2, _field(2, 2, _field(1, 2, b"abc"))),  # digest hash not a sha256
        action_result()[:-3],  # truncated
        stdout + stdout,  # a reader would merge the two stdout digests
        _field(6, 2, digest(b"out") + _field(1, 2, hashlib.sha256(b"x").hexdigest().encode())),
    ):
        with pytest.raises(serve.CacheError, match="not a Bazel ActionResult"):
            serve.check_action_result(bad)


def _cas(tmp_path, *contents):
    """A cas/ directory holding these blobs."""
    cas = tmp_path / "cas"
    cas.mkdir(exist_ok=True)
    for content in contents:
        (cas / hashlib.sha256(content).hexdigest()).write_bytes(content)
    return cas


def test_outputs_must_be_in_cas(tmp_path):
    cas = _cas(tmp_path)
    missing = hashlib.sha256(b"an output").hexdigest()
    with pytest.raises(serve.CacheError, match=f"output file bazel-out/.*/out \\(sha256 {missing}"):
        serve.check_blobs_stored(action_result(), cas)
    _cas(tmp_path, b"an output")
    serve.check_blobs_stored(action_result(), cas)
    # A digest is a hash and a size; the same hash with another size is not stored.
    wrong_size = _field(2, 2, _field(1, 2, b"out") + _field(2, 2, digest(b"an output", 3)))
    with pytest.raises(serve.CacheError, match="as 3 bytes, but cas/.* holds 9 bytes"):
        serve.check_blobs_stored(wrong_size, cas)
    no_digest = _field(2, 2, _field(1, 2, b"out"))
    with pytest.raises(serve.CacheError, match="output file out without a digest"):
        serve.check_blobs_stored(no_digest, cas)


def test_stdout_and_stderr_must_be_in_cas_unless_empty(tmp_path):
    cas = _cas(tmp_path)
    # Bazel 4.2.3 names the empty blob for an empty stdout and never uploads it.
    empty = _field(6, 2, digest(b"")) + _field(8, 2, digest(b""))
    serve.check_blobs_stored(empty, cas)
    assert not any(cas.iterdir())
    # The empty blob's hash with a size is not the empty blob.
    with pytest.raises(serve.CacheError, match="stdout .*which cas/ does not hold"):
        serve.check_blobs_stored(_field(6, 2, digest(b"", 5)), cas)
    for number, name in ((6, "stdout"), (8, "stderr")):
        with pytest.raises(serve.CacheError, match=f"names {name} \\(sha256"):
            serve.check_blobs_stored(_field(number, 2, digest(b"log")), cas)
    _cas(tmp_path, b"log")
    serve.check_blobs_stored(_field(6, 2, digest(b"log")) + _field(8, 2, digest(b"log")), cas)


def test_output_directory_tree_and_its_files_must_be_in_cas(tmp_path):
    tree = tree_of({"a.txt": b"a"}, {"b.txt": b"b"})
    result = directory_result(tree)
    cas = _cas(tmp_path)
    with pytest.raises(serve.CacheError, match="the tree of output directory bazel-out/bin/dir"):
        serve.check_blobs_stored(result, cas)
    _cas(tmp_path, tree, b"a")
    with pytest.raises(serve.CacheError, match="file b.txt in the tree of output directory"):
        serve.check_blobs_stored(result, cas)
    _cas(tmp_path, b"b")
    serve.check_blobs_stored(result, cas)
    not_a_tree = b"\xff not a tree"
    _cas(tmp_path, not_a_tree)
    with pytest.raises(serve.CacheError, match="is not a Bazel Tree protobuf"):
        serve.check_blobs_stored(directory_result(not_a_tree), cas)
    serve.check_blobs_stored(directory_result(b""), cas)  # an empty directory's tree


def test_reads_are_open_and_writes_need_a_user(tmp_path):
    body = action_result(b"an output")
    key = hashlib.sha256(b"an action").hexdigest()
    with serve.CacheServer(tmp_path, users={"writer": "pw"}) as cache:
        assert not (tmp_path / "htpasswd").read_text().startswith("writer:{SSHA}")
        url = f"{cache.url}/ac/{key}"
        assert _status("PUT", url, body)[0] == 401
        assert _status("GET", url)[0] == 404
        good = serve.basic_auth_header("writer", "pw")
        # nginx accepts the SHA-512 crypt line serve.py wrote.
        output = f"{cache.url}/cas/{hashlib.sha256(b'an output').hexdigest()}"
        assert _status("PUT", output, b"an output", good)[0] == 201
        assert _status("PUT", url, body, good)[0] == 201
        assert _status("PUT", url, body, serve.basic_auth_header("writer", "pw2"))[0] == 401
        assert _status("GET", url) == (200, body)
        assert _status("HEAD", url)[0] == 200
        assert cache.entries() == {"ac": 1, "cas": 1}
        pid = cache.proc.pid
    # Stopped: nothing listens any more, the process is gone.
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(url, timeout=2)
    assert subprocess.run(["kill", "-0", str(pid)], capture_output=True).returncode != 0


def test_cache_stores_only_what_the_name_says(tmp_path):
    auth = serve.basic_auth_header("writer", "pw")
    body = b"file contents"
    good = hashlib.sha256(body).hexdigest()
    wrong = hashlib.sha256(b"something else").hexdigest()
    with serve.CacheServer(tmp_path, users={"writer": "pw"}) as cache:
        # cas: the body's sha256 must be its name; a wrong one stores nothing.
        assert _status("PUT", f"{cache.url}/cas/{wrong}", body, auth)[0] == 400
        assert _status("GET", f"{cache.url}/cas/{wrong}")[0] == 404
        assert _status("PUT", f"{cache.url}/cas/{good}", body, auth)[0] == 201
        assert _status("GET", f"{cache.url}/cas/{good}") == (200, body)
        # ac: garbage is refused.
        assert _status("PUT", f"{cache.url}/ac/{wrong}", b"garbage!", auth)[0] == 400
        assert _status("GET", f"{cache.url}/ac/{wrong}")[0] == 404
        # ac: an entry naming an output that cas/ lacks is refused, and stored once
        # the output is there (Bazel uploads an action's blobs before its result).
        result = action_result(b"an output")
        status, reason = _status("PUT", f"{cache.url}/ac/{wrong}", result, auth)
        assert status == 400 and b"which cas/ does not hold" in reason, reason
        assert _status("GET", f"{cache.url}/ac/{wrong}")[0] == 404
        output = hashlib.sha256(b"an output").hexdigest()
        assert _status("PUT", f"{cache.url}/cas/{output}", b"an output", auth)[0] == 201
        assert _status("PUT", f"{cache.url}/ac/{wrong}", result, auth)[0] == 201
        assert _status("GET", f"{cache.url}/ac/{wrong}") == (200, result)
        # Only ac/ and cas/ with 64-hex names exist, for writers and readers.
        for path in (f"other/{good}", "cas/abc", f"cas/{good.upper()}", f"cas/{good}/x", "x"):
            assert _status("PUT", f"{cache.url}/{path}", body, auth)[0] == 400, path
            assert _status("GET", f"{cache.url}/{path}")[0] == 400, path
        assert cache.entries() == {"ac": 1, "cas": 2}
        assert not any((cache.data_dir / ".tmp").iterdir())
        # Deleting still needs a user.
        assert _status("DELETE", f"{cache.url}/cas/{good}")[0] == 401
        assert _status("DELETE", f"{cache.url}/cas/{good}", auth=auth)[0] == 204
        assert _status("GET", f"{cache.url}/cas/{good}")[0] == 404


def test_cut_upload_stores_nothing(tmp_path):
    body = b"x" * 100000
    key = hashlib.sha256(body).hexdigest()
    with serve.CacheServer(tmp_path, users={"writer": "pw"}) as cache:
        with socket.create_connection((cache.host, cache.port)) as s:
            s.sendall(
                f"PUT /{cache.prefix}/cas/{key} HTTP/1.1\r\nHost: x\r\n"
                f"Authorization: {serve.basic_auth_header('writer', 'pw')}\r\n"
                f"Content-Length: {len(body)}\r\n\r\n".encode() + body[:50000]
            )
        time.sleep(0.5)
        assert _status("GET", f"{cache.url}/cas/{key}")[0] == 404
        assert cache.entries() == {"ac": 0, "cas": 0}


def test_old_ssha_line_still_works_with_a_warning(tmp_path, capsys):
    (tmp_path / "htpasswd").write_text(ssha_line("old", "pw"))
    body = b"x"
    url_path = f"cas/{hashlib.sha256(body).hexdigest()}"
    with serve.CacheServer(tmp_path) as cache:
        assert (
            _status("PUT", f"{cache.url}/{url_path}", body, serve.basic_auth_header("old", "pw"))[0]
            == 201
        )
    err = capsys.readouterr().err
    assert "warning" in err and "'old'" in err and "serve.py htpasswd old" in err


def test_tls(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
        + ["-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1"]
        + ["-addext", "subjectAltName=IP:127.0.0.1"],
        check=True,
        capture_output=True,
    )
    context = ssl.create_default_context(cafile=str(cert))
    body = b"over tls"
    path = f"cas/{hashlib.sha256(body).hexdigest()}"
    auth = serve.basic_auth_header("writer", "pw")
    root = tmp_path / "srv"
    with serve.CacheServer(root, users={"writer": "pw"}, tls_cert=cert, tls_key=key) as cache:
        assert cache.url.startswith("https://")
        assert _status("PUT", f"{cache.url}/{path}", body, auth, context)[0] == 201
        assert _status("GET", f"{cache.url}/{path}", context=context) == (200, body)
        # Plain HTTP to the TLS port is refused, so the password never goes in clear.
        plain = cache.url.replace("https://", "http://")
        assert _status("PUT", f"{plain}/{path}", body, auth)[0] == 400
    with pytest.raises(serve.CacheError, match="both --tls-cert and --tls-key"):
        serve.CacheServer(root, tls_cert=cert)
    with pytest.raises(serve.CacheError, match="--tls-key /nonexistent: no such file"):
        serve.CacheServer(root, tls_cert=cert, tls_key="/nonexistent")


def _wait_for(predicate, timeout=15):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def _alive(pid):
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (OSError, IndexError):
        return False


def _nginx_pids(master):
    """The nginx master and its workers."""
    pids = [master]
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().split(") ")[1].split()[1]) == master:
                pids.append(int(stat.parent.name))
        except (OSError, IndexError, ValueError):
            pass
    return pids


def _serve_py_run(root):
    """`serve.py run` on a free port: (its process, the port, the nginx master and
    workers' pids), once nginx has started its worker."""
    (root / "htpasswd").write_text(serve.htpasswd_line("writer", "pw"))
    port = serve.free_port()
    proc = subprocess.Popen(
        [sys.executable, serve.__file__, "run", "--root", str(root)]
        + ["--listen", f"127.0.0.1:{port}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    pid_file = root / "run" / "nginx.pid"
    try:
        assert _wait_for(lambda: pid_file.exists() and pid_file.read_text().strip()), "no pid"
        assert _wait_for(lambda: len(_nginx_pids(int(pid_file.read_text()))) > 1), "no worker"
    except BaseException:
        proc.kill()
        raise
    return proc, port, _nginx_pids(int(pid_file.read_text()))


def _kill_left_over(proc, pids):
    proc.kill()
    proc.wait()
    for pid in pids:
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_nginx(tmp_path, sig):
    proc, _, pids = _serve_py_run(tmp_path)
    try:
        proc.send_signal(sig)
        assert proc.wait(timeout=15) == 0, proc.stdout.read()
        assert _wait_for(lambda: not any(_alive(p) for p in pids)), f"left running: {pids}"
    finally:
        _kill_left_over(proc, pids)


def test_nginx_does_not_outlive_a_killed_serve_py(tmp_path):
    proc, port, pids = _serve_py_run(tmp_path)
    try:
        proc.kill()  # SIGKILL: serve.py cannot stop nginx itself
        proc.wait()
        assert _wait_for(
            lambda: not any(_alive(p) for p in pids), timeout=5
        ), f"nginx left running: {[p for p in pids if _alive(p)]}"
        with socket.socket() as s:
            # As nginx binds: a closed connection's TIME_WAIT does not hold the port.
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", port))  # OSError while anything still listens there
    finally:
        _kill_left_over(proc, pids)


def _pid_in(pid_file):
    """The pid file's content; "" while it is absent (between the old file's removal
    and nginx writing its own)."""
    try:
        return pid_file.read_text().strip()
    except FileNotFoundError:
        return ""


def test_stale_pid_file_is_replaced_and_a_live_one_refused(tmp_path):
    (tmp_path / "run").mkdir()
    pid_file = tmp_path / "run" / "nginx.pid"
    dead = subprocess.Popen(["true"])
    dead.wait()
    pid_file.write_text(f"{dead.pid}\n")  # the server that wrote it is gone
    with serve.CacheServer(tmp_path, users={"writer": "pw"}) as cache:
        assert _wait_for(lambda: _pid_in(pid_file) == str(cache.proc.pid))
    pid_file.write_text(f"{os.getpid()}\n")  # its pid now belongs to another program
    with serve.CacheServer(tmp_path, users={"writer": "pw"}) as cache:
        assert _wait_for(lambda: _pid_in(pid_file) == str(cache.proc.pid))
        second = serve.CacheServer(tmp_path, users={"writer": "pw"})
        try:
            with pytest.raises(serve.CacheError, match=f"an nginx \\(pid {cache.proc.pid}\\)"):
                second.start()
        finally:
            second.stop()  # if the refusal is broken, the second nginx must not outlive us
        assert _status("GET", f"{cache.url}/cas/{'0' * 64}")[0] == 404  # still serving
