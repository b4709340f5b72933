#!/usr/bin/env bash
# Make sure the PostgreSQL server programs are on this machine, for the tests of the node's
# PostgreSQL source (tests/node/adapters/test_postgres.py). The tests start and delete their
# own throwaway cluster; this script only installs, and starts nothing.
#
# Idempotent and quiet: it says nothing when PostgreSQL is already there. As root it
# installs Debian's `postgresql` package when no /usr/lib/postgresql/*/bin/initdb exists,
# without the package's default cluster, and creates the unprivileged system user
# `emsbench` that the tests run initdb and the server as (initdb refuses to run as root).
# Without root (or password-less sudo) it cannot install: it warns and the tests skip,
# except under CI (CI set), where that is an error.
set -euo pipefail

USER_NAME=emsbench

have_server() {
  compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null
}

in_ci() {
  case "${CI:-}" in ""|0|false|False|FALSE) return 1 ;; *) return 0 ;; esac
}

if [ "$(id -u)" -eq 0 ]; then
  SUDO=()
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
  SUDO=(sudo -n)
else
  if ! have_server; then
    msg="postgres.sh: PostgreSQL is not installed and installing it needs root"
    msg+=" (apt-get install postgresql); the PostgreSQL source tests will skip"
    if in_ci; then echo "$msg" >&2; exit 1; fi
    echo "$msg" >&2
  fi
  exit 0  # not root: initdb runs as this user, no dedicated user needed
fi

if ! have_server; then
  if ! command -v apt-get >/dev/null; then
    echo "postgres.sh: no apt-get here; install the PostgreSQL server (initdb, pg_ctl) by hand" >&2
    exit 1
  fi
  # No default cluster: the package would otherwise create and start "main" on port 5432,
  # a server nobody uses (the tests run their own throwaway clusters).
  "${SUDO[@]}" mkdir -p /etc/postgresql-common/createcluster.d
  echo "create_main_cluster = false" \
    | "${SUDO[@]}" tee /etc/postgresql-common/createcluster.d/emsbench.conf >/dev/null
  # shellcheck source=apt-install.sh
  . "$(dirname "$0")/apt-install.sh"
  apt_install postgres.sh postgresql
  have_server || { echo "postgres.sh: installed, but no /usr/lib/postgresql/*/bin/initdb" >&2; exit 1; }
fi

# Only root needs someone else to run the server as; another user runs it itself.
if [ "$(id -u)" -eq 0 ] && ! id -u "$USER_NAME" >/dev/null 2>&1; then
  useradd --system --no-create-home --home-dir /nonexistent \
    --shell /usr/sbin/nologin "$USER_NAME"
fi
