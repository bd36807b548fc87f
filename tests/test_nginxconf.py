"""config/nginx.conf rendered for N processes: every placeholder filled, and nginx itself accepts it."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from bench.services import free_port
from bench.stack import nginx_binary
from liveshow.nginxconf import CONFIG_DIR, main, render

TEMPLATE = (CONFIG_DIR / "nginx.conf").read_text()


def test_each_process_gets_an_upstream_entry_a_prefix_and_a_session_prefix(tmp_path: Path) -> None:
    text = render(TEMPLATE, "127.0.0.1:8080", ["127.0.0.1:8001", "127.0.0.1:8002", "10.0.0.5:8000"], tmp_path)
    assert "@" not in "".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    for server in ("server 127.0.0.1:8001;", "server 127.0.0.1:8002;", "server 10.0.0.5:8000;"):
        assert server in text
    assert '"10.0.0.5:8000" "/p3";' in text
    assert "location /p3/hls/" in text and "proxy_pass http://10.0.0.5:8000/hls/;" in text
    assert "listen 127.0.0.1:8080;" in text
    assert f"include {CONFIG_DIR}/liveshow-hls-cache.conf;" in text
    assert f"proxy_cache_path {tmp_path}/hls-cache" in text


def test_no_backend_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="backend"):
        render(TEMPLATE, "80", [], tmp_path)


def test_an_unknown_placeholder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="placeholder"):
        render(TEMPLATE + "\nworker_rlimit_nofile @NOFILE@;\n", "80", ["127.0.0.1:8001"], tmp_path)


def test_nginx_accepts_the_rendered_configuration(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    binary = nginx_binary()
    if binary is None:
        pytest.skip("nginx is not installed (make test runs scripts/ensure-nginx.sh)")
    assert (
        main(["--listen", f"127.0.0.1:{free_port()}", "--backend", "127.0.0.1:9", "--run-dir", str(tmp_path)])
        == 0
    )
    conf = tmp_path / "nginx.conf"
    conf.write_text(capsys.readouterr().out)
    checked = subprocess.run(
        [binary, "-t", "-c", str(conf), "-p", str(tmp_path)], capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stderr
