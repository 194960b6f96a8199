#!/usr/bin/env bash
# Installs mciv on a bare-metal host with systemd (as root, from the
# repository root): the binary, the user mciv, the units, example
# configuration (never overwritten). Enable the parts this host runs:
#   deploy/install.sh && systemctl enable --now mciv-collector
set -euo pipefail
cd "$(dirname "$0")/.."
PREFIX=${PREFIX:-/usr/local}
BIN=${BIN:-./mciv}
[ -x "$BIN" ] || { echo "build first: make build" >&2; exit 1; }
install -D -m 0755 "$BIN" "$PREFIX/bin/mciv"
getent group mciv >/dev/null || groupadd --system mciv
getent passwd mciv >/dev/null || useradd --system --gid mciv --home-dir /var/lib/mciv --shell /usr/sbin/nologin mciv
install -d -m 0750 -g mciv /etc/mciv /etc/mciv/rules
for f in deploy/systemd/examples/*.yaml; do
  [ -e "/etc/mciv/$(basename "$f")" ] || install -m 0640 -g mciv "$f" /etc/mciv/
done
for f in rules/default/*.yaml; do
  [ -e "/etc/mciv/rules/$(basename "$f")" ] || install -m 0640 -g mciv "$f" /etc/mciv/rules/
done
install -m 0644 deploy/systemd/*.service /etc/systemd/system/
install -d /etc/systemd/system/mciv-collector.service.d
echo "uprobes (MariaDB, postgres_probes: usdt): cp deploy/systemd/mciv-collector.service.d/uprobes.conf /etc/systemd/system/mciv-collector.service.d/"
if [ -d /run/systemd/system ]; then systemctl daemon-reload; fi
echo "installed; edit /etc/mciv/*.yaml, then: systemctl enable --now mciv-collector (database hosts), mciv-analyzer, mciv-notifier"
