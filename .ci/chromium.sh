#!/usr/bin/env bash
# Debian's chromium for the dashboard's browser tests (tests/dashboard); playwright drives it
# and never downloads a browser of its own. Idempotent and quiet: does nothing when present.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq chromium >/dev/null
chromium --version
