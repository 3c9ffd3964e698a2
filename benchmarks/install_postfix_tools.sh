#!/bin/sh
# Install Postfix's smtp-sink (C SMTP server that discards mail) and smtp-source (C SMTP
# client) for the benchmarks, without leaving a mail system running. Idempotent: does
# nothing when both tools already exist (unless --force). Needs root (or sudo).
set -eu

if [ "${1:-}" != "--force" ] && [ -x /usr/sbin/smtp-sink ] && [ -x /usr/sbin/smtp-source ]; then
    echo "smtp-sink and smtp-source already installed"
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi

# The package's postinst must not configure (or start) a mail system.
# policy-rc.d exit 101 tells invoke-rc.d not to start services during the install.
POLICY=/usr/sbin/policy-rc.d
CREATED_POLICY=0
if [ ! -e "$POLICY" ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$POLICY" >/dev/null
    $SUDO chmod 755 "$POLICY"
    CREATED_POLICY=1
fi
cleanup() {
    if [ "$CREATED_POLICY" -eq 1 ]; then
        $SUDO rm -f "$POLICY"
    fi
}
trap cleanup EXIT

$SUDO apt-get update
echo "postfix postfix/main_mailer_type select No configuration" | $SUDO debconf-set-selections
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postfix

# Make sure no Postfix master is left running and it does not start at boot.
if $SUDO postfix status >/dev/null 2>&1; then
    $SUDO postfix stop || true
fi
if command -v service >/dev/null 2>&1; then
    $SUDO service postfix stop >/dev/null 2>&1 || true
fi
if command -v systemctl >/dev/null 2>&1; then
    $SUDO systemctl disable --now postfix >/dev/null 2>&1 || true
fi

for tool in /usr/sbin/smtp-sink /usr/sbin/smtp-source; do
    if [ ! -x "$tool" ]; then
        echo "error: $tool missing after installing postfix" >&2
        exit 1
    fi
done
echo "installed: /usr/sbin/smtp-sink /usr/sbin/smtp-source (no postfix master running)"
