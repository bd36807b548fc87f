#!/usr/bin/env bash
# The HLS-through-a-cache test and `make cluster` run Debian's nginx as their own child process (config
# rendered from config/nginx.conf); install it when the machine lacks it. No service is enabled.
set -euo pipefail
if command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ]; then exit 0; fi
SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends nginx >/dev/null
# The package starts a system nginx on port 80 where it can; the tests need none of it.
$SUDO systemctl disable --now nginx >/dev/null 2>&1 || true
