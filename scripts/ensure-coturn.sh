#!/usr/bin/env bash
# The relay-only browser test runs Debian's coturn (turnserver) as its own child process on loopback;
# install it when the machine lacks it. No service is enabled: the test starts and stops its copy.
set -euo pipefail
if command -v turnserver >/dev/null 2>&1; then exit 0; fi
SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends coturn >/dev/null
