#!/usr/bin/env bash
# Installs the tools the test suite uses that Go does not bring: promtool
# (from Debian's prometheus package) to check the alert rules.
set -euo pipefail
if ! command -v promtool >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
  else
    echo "promtool not found and cannot install it: apt-get install prometheus" >&2
    exit 1
  fi
fi
promtool --version 2>&1 | head -n 1
