"""Tests of serve.py: the nginx configuration, the credentials, the WebDAV rules."""

import base64
import hashlib
import subprocess
import urllib.error
import urllib.request

import pytest

from containers.cache import serve


def test_config_has_the_webdav_cache_settings(tmp_path):
    text = serve.render_config("127.0.0.1:9092", tmp_path, "knlp")
    assert "listen 127.0.0.1:9092;" in text
    assert "location /knlp/ {" in text
    for line in (
        "dav_methods PUT DELETE;",
        "create_full_put_path on;",
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


def test_htpasswd_line_is_salted_sha1():
    line = serve.htpasswd_line("writer", "s3cret", salt=b"12345678")
    user, scheme_hash = line.strip().split(":", 1)
    assert user == "writer" and scheme_hash.startswith("{SSHA}")
    raw = base64.b64decode(scheme_hash[len("{SSHA}") :])
    assert raw[20:] == b"12345678"
    assert raw[:20] == hashlib.sha1(b"s3cret12345678").digest()
    with pytest.raises(serve.CacheError, match="bad user name"):
        serve.htpasswd_line("a:b", "x")
    with pytest.raises(serve.CacheError, match="empty password"):
        serve.htpasswd_line("a", "")


def _status(method, url, body=None, auth=None):
    req = urllib.request.Request(url, data=body, method=method)
    if auth:
        req.add_header("Authorization", auth)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, b""


def test_reads_are_open_and_writes_need_a_user(tmp_path):
    body = b"an action result"
    key = hashlib.sha256(body).hexdigest()
    with serve.CacheServer(tmp_path, users={"writer": "pw"}) as cache:
        url = f"{cache.url}/ac/{key}"
        assert _status("PUT", url, body)[0] == 401
        assert _status("GET", url)[0] == 404
        good = serve.basic_auth_header("writer", "pw")
        assert _status("PUT", url, body, good)[0] in (201, 204)
        assert _status("GET", url) == (200, body)
        assert _status("HEAD", url)[0] == 200
        assert cache.entries() == {"ac": 1, "cas": 0}
        pid = cache.proc.pid
    # Stopped: nothing listens any more, the process is gone.
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(url, timeout=2)
    assert subprocess.run(["kill", "-0", str(pid)], capture_output=True).returncode != 0
