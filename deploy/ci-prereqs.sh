#!/usr/bin/env bash
# Installs the tools the test suite uses that Go does not bring, each only when
# it is missing: promtool (from Debian's prometheus package) to check the alert
# rules, Chromium (Debian's chromium package) for the console's browser
# tests in cmd/personio-entra (they skip when no Chromium binary is on PATH),
# and wrk for the receiver benchmark's load script (cmd/loadgen/wrk_test.go).
set -euo pipefail

missing=()
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
if ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1 &&
  ! command -v google-chrome >/dev/null 2>&1; then
  missing+=(chromium)
fi

if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "missing tools and cannot install them: apt-get install ${missing[*]}" >&2
    exit 1
  fi
fi
promtool --version 2>&1 | head -n 1
wrk --version 2>&1 | head -n 1 || true
for b in chromium chromium-browser google-chrome; do
  if command -v "$b" >/dev/null 2>&1; then
    "$b" --version 2>/dev/null | head -n 1 || true
    break
  fi
done
