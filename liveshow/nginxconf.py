"""Render config/nginx.conf for a set of liveshow processes (pure text; ``python -m liveshow.nginxconf``).

Process N (1-based, in the order given) gets the prefix /pN/, which its ``LIVESHOW_ADVERTISE_URL``
must name (``https://your.domain/pN``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

CONFIG_DIR = Path(__file__).resolve().parent.parent / "config"


def process_location(index: int, backend: str) -> str:
    prefix = f"/p{index}"
    return f"""        # process {index}: LIVESHOW_ADVERTISE_URL=<public origin>{prefix}
        location {prefix}/ws/ {{
            proxy_pass http://{backend}/ws/;
            proxy_read_timeout 1h;
        }}
        location ~ ^{prefix}/(whip|whep)/ {{
            rewrite ^{prefix}(/.*)$ $1 break;
            proxy_pass http://{backend};
            proxy_redirect ~^/(whip|whep)/(.*)$ {prefix}/$1/$2;
        }}
        location {prefix}/hls/ {{
            proxy_pass http://{backend}/hls/;
            include @CONF_DIR@/liveshow-hls-cache.conf;
        }}
        location {prefix}/ {{
            proxy_pass http://{backend}/;
        }}"""


def render(
    template: str, listen: str, backends: list[str], run_dir: Path, conf_dir: Path = CONFIG_DIR
) -> str:
    if not backends:
        raise ValueError("at least one backend (host:port) is needed")
    text = (
        template.replace("@UPSTREAM_SERVERS@", "\n".join(f"        server {b};" for b in backends))
        .replace("@PROCESS_MAP@", "\n".join(f'        "{b}" "/p{i}";' for i, b in enumerate(backends, 1)))
        .replace("@PROCESS_LOCATIONS@", "\n".join(process_location(i, b) for i, b in enumerate(backends, 1)))
        .replace("@LISTEN@", listen)
        .replace("@RUN_DIR@", str(run_dir))
        .replace("@CONF_DIR@", str(conf_dir))
    )
    if "@" in "".join(line for line in text.splitlines() if not line.lstrip().startswith("#")):
        raise ValueError("a placeholder was left unfilled")
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--listen", default="80", help="what nginx listens on, e.g. 80 or 127.0.0.1:8080")
    parser.add_argument("--backend", action="append", required=True, help="a liveshow process, host:port")
    parser.add_argument("--run-dir", type=Path, required=True, help="pid, logs, temp files and the cache")
    parser.add_argument("--template", type=Path, default=CONFIG_DIR / "nginx.conf")
    args = parser.parse_args(argv)
    sys.stdout.write(render(args.template.read_text(), args.listen, args.backend, args.run_dir))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
