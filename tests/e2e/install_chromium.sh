#!/usr/bin/env bash
# Install Debian's chromium for the end-to-end browser test, unless it is already there.
# Playwright drives this binary (executable_path); `playwright install` is never used, so
# the test downloads no browser build of its own. Root runs apt-get directly, anyone else
# through sudo; `apt-get update` only when the package lists do not know chromium yet.
set -euo pipefail

CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
if [ -x "$CHROMIUM" ]; then
    exit 0
fi

fail() {
    echo "install_chromium.sh: $*" >&2
    echo "Install it by hand (as root: apt-get install -y --no-install-recommends chromium)" \
        "or skip the browser test with: pytest -m 'not e2e'" >&2
    exit 1
}

if [ "$(id -u)" -eq 0 ]; then
    SUDO=()
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    SUDO=(sudo -n)
else
    fail "$CHROMIUM is missing and installing it needs root or passwordless sudo"
fi
command -v apt-get >/dev/null || fail "$CHROMIUM is missing and this is not a Debian system"

export DEBIAN_FRONTEND=noninteractive
if ! apt-cache policy chromium 2>/dev/null | grep -q 'Candidate: [0-9]'; then
    echo "install_chromium.sh: apt-get update (chromium not in the package lists yet)" >&2
    "${SUDO[@]}" apt-get update -q || fail "apt-get update failed"
fi
echo "install_chromium.sh: apt-get install chromium (Debian package)" >&2
"${SUDO[@]}" apt-get install -y -q --no-install-recommends chromium \
    || fail "apt-get install chromium failed"
[ -x "$CHROMIUM" ] || fail "chromium installed but $CHROMIUM is not there"
