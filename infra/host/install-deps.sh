#!/usr/bin/env bash
# Installs what the project needs on a Debian 12 host, once: apt packages and the Python venv.
# Safe to run again: it installs only what is missing and reinstalls the venv only when
# pyproject.toml or the lock (requirements/all.lock) changed.
set -euo pipefail
cd "$(dirname "$0")/../.."

APT_PACKAGES=(postgresql-15 postgresql-contrib postgresql-client-15 python3-venv python3-dev
  gcc make git openssl ca-certificates iproute2 procps pgbackrest
  # The exchange API's tests run through a real TLS terminator, and its runbook's curl and jq lines.
  nginx-light curl jq
  # The app hosts' connection pool: the case service's tests run through a real one.
  pgbouncer
  # The Unicode font the periodic reports' PDF embeds (Vietnamese), read from /usr/share/fonts/truetype/dejavu.
  fonts-dejavu-core
  # The major upgrade's tests run Debian 13's PostgreSQL 17 from a root this builds (dr/newer_postgres.py).
  debootstrap util-linux)
if [ "${KNTC_WITH_LAB:-0}" = 1 ]; then
  APT_PACKAGES+=(podman runc debootstrap nftables openssh-client uidmap slirp4netns fuse-overlayfs)
fi
if [ "${KNTC_WITH_BROWSER:-0}" = 1 ]; then
  APT_PACKAGES+=(chromium)
fi

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: apt-get install ${missing[*]}"
  # A host with systemd would otherwise create and start 15/main on 5432 on install.
  mkdir -p /etc/postgresql-common
  grep -qs '^create_main_cluster' /etc/postgresql-common/createcluster.conf \
    || echo 'create_main_cluster = false' >> /etc/postgresql-common/createcluster.conf
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# promtool and amtool (checking and unit-testing the alert rules and Alertmanager's routes) and
# prometheus itself (the on-call dashboard's test serves its consoles from backfilled figures) come
# out of Debian's packages without installing them: installed, they would start a Prometheus and an
# Alertmanager on a host with systemd.
TOOLS=.tools
for pkg_tool in prometheus:promtool prometheus:prometheus prometheus-alertmanager:amtool; do
  pkg=${pkg_tool%%:*} tool=${pkg_tool##*:}
  if [ ! -x "$TOOLS/$tool" ]; then
    echo "install-deps: $tool from the Debian package $pkg"
    work=$(mktemp -d)
    (cd "$work" && apt-get download -qq "$pkg" >/dev/null 2>&1 || { apt-get update -qq && apt-get download -qq "$pkg"; })
    dpkg-deb -x "$work"/"$pkg"_*.deb "$work/root"
    mkdir -p "$TOOLS"
    install -m 0755 "$work/root/usr/bin/$tool" "$TOOLS/$tool"
    rm -rf "$work"
  fi
done

PY=${PYTHON:-python3}
# Every Python package comes from the hash-locked requirements (`make lock` regenerates them from
# pyproject.toml): a changed lock or pyproject.toml re-installs; a download whose hash differs
# from the lock's stops the install.
LOCK=requirements/all.lock
stamp=.venv/.installed-$(cat pyproject.toml "$LOCK" | sha256sum | cut -c1-16)
if [ ! -f "$stamp" ]; then
  [ -x .venv/bin/python ] || "$PY" -m venv .venv
  # uv installs the lock in seconds where pip took three minutes of every fresh clone's test run. It
  # comes first, by pip, pinned and hashed as the lock has it.
  [ -x .venv/bin/uv ] || .venv/bin/pip install -q --no-deps --require-hashes \
    -r <(awk '/^uv==/ {p = 1; print; next} p && /^ +--hash/ {print; next} {p = 0}' "$LOCK")
  .venv/bin/uv pip install -q --python .venv/bin/python --require-hashes -r "$LOCK"
  # The project itself, without resolving anything more (its dependencies are the lock's).
  .venv/bin/uv pip install -q --python .venv/bin/python --no-deps --no-build-isolation -e .
  rm -f .venv/.installed-*
  touch "$stamp"
fi
