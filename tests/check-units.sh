#!/bin/sh
# SPDX-License-Identifier: MIT
# The systemd units: `systemd-analyze verify` finds nothing to say about
# them, the generated service runs the installed daemon, and the offline
# security review keeps the hardening in place. TAP on stdout.
#
# Environment (set by tests/config.am): IPCD_BIN (the daemon just built),
# IPCD_UNIT_SRCDIR (systemd/ in the source tree), IPCD_UNIT_BUILDDIR
# (systemd/ in the build tree, where make generated ipcd.service).
set -u

if ! command -v systemd-analyze >/dev/null 2>&1; then
        echo "1..0 # SKIP systemd-analyze not found (Debian: apt-get install systemd)"
        exit 0
fi
: "${IPCD_BIN:?}" "${IPCD_UNIT_SRCDIR:?}" "${IPCD_UNIT_BUILDDIR:?}"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/ipcd-units.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
n=0
failed=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
not_ok() { n=$((n + 1)); failed=1; echo "not ok $n - $1"; shift; for l in "$@"; do echo "# $l"; done; }
skip() { n=$((n + 1)); echo "ok $n - $1 # SKIP $2"; }

echo "1..7"

# 1. make substituted @sbindir@ with an absolute path.
service="$IPCD_UNIT_BUILDDIR/ipcd.service"
exec_start=$(sed -n 's/^ExecStart=//p' "$service" 2>/dev/null)
case "$exec_start" in
/*/ipcd) ok "generated ipcd.service runs $exec_start" ;;
*) not_ok "generated ipcd.service has an absolute ExecStart=" "found: '$exec_start'" ;;
esac

# Test copies: the service runs the daemon just built (verify wants an
# executable that exists).
mkdir "$tmp/good" "$tmp/bad"
cp "$IPCD_UNIT_SRCDIR/ipcd.socket" "$tmp/good/ipcd.socket"
sed "s|^ExecStart=.*|ExecStart=$IPCD_BIN|" "$service" > "$tmp/good/ipcd.service"

verify() {
        (cd "$1" && systemd-analyze verify --man=no ./ipcd.socket ./ipcd.service) > "$tmp/out" 2>&1
}

# 2. verify passes and prints nothing (it only warns about unknown keys).
if verify "$tmp/good" && ! [ -s "$tmp/out" ]; then
        ok "systemd-analyze verify: clean"
else
        not_ok "systemd-analyze verify: clean" "$(cat "$tmp/out")"
fi

# 3. ... and it would have noticed: a unit with a typo and a missing
# executable does not pass.
cp "$tmp/good/ipcd.socket" "$tmp/bad/"
sed -e "s|^ExecStart=.*|ExecStart=$tmp/no-such-ipcd|" -e 's|^Type=notify|Typo=notify|' \
        "$tmp/good/ipcd.service" > "$tmp/bad/ipcd.service"
if verify "$tmp/bad" && ! [ -s "$tmp/out" ]; then
        not_ok "systemd-analyze verify notices a broken unit" "it passed"
else
        ok "systemd-analyze verify notices a broken unit"
fi

# 4. The settings the daemon relies on.
missing=
for kv in Type=notify ExecReload= WatchdogSec= RuntimeDirectory=ipcd RuntimeDirectoryPreserve=yes \
        ConfigurationDirectory=ipcd NoNewPrivileges=yes ProtectSystem=strict \
        RestrictAddressFamilies=AF_UNIX SystemCallFilter=@system-service CapabilityBoundingSet= \
        LimitNOFILE=; do
        grep -q "^$kv" "$tmp/good/ipcd.service" || missing="$missing $kv"
done
for kv in ListenStream=/run/ipcd/ipcd.sock SocketMode=0666 FileDescriptorName=ipcd; do
        grep -q "^$kv" "$tmp/good/ipcd.socket" || missing="$missing $kv"
done
if [ -z "$missing" ]; then ok "units have the settings ipcd relies on"; else not_ok "units have the settings ipcd relies on" "missing:$missing"; fi

# 5. Nothing of @...@ is left over.
if grep -q '@[a-z_]*@' "$service"; then
        not_ok "no unsubstituted @variables@" "$(grep '@[a-z_]*@' "$service")"
else
        ok "no unsubstituted @variables@"
fi

# 6. The offline security review (systemd >= 250) rates the service at
# most 2.5 ("OK"); a dropped hardening line shows up here.
if systemd-analyze security --help 2>/dev/null | grep -q -- '--offline'; then
        if (cd "$tmp/good" && systemd-analyze security --offline=yes --threshold=25 ./ipcd.service) \
                > "$tmp/out" 2>&1; then
                ok "systemd-analyze security: $(grep -o 'exposure level[^:]*: [0-9.]*' "$tmp/out" | head -n1)"
        else
                not_ok "systemd-analyze security: exposure at most 2.5" "$(tail -n 3 "$tmp/out")"
        fi
else
        skip "systemd-analyze security" "this systemd-analyze has no --offline"
fi

# 7. The socket unit stays valid on its own (a distribution may ship a
# drop-in for the service only).
if (cd "$tmp/good" && systemd-analyze verify --man=no ./ipcd.socket) > "$tmp/out" 2>&1 && ! [ -s "$tmp/out" ]; then
        ok "ipcd.socket verifies alone"
else
        not_ok "ipcd.socket verifies alone" "$(cat "$tmp/out")"
fi
exit 0
