# Sourced by postgres.sh and browser.sh: install Debian packages quietly.
#
# apt_install WHO PACKAGE...: install PACKAGEs with apt-get (through "${SUDO[@]}", which the
# caller sets: empty as root, (sudo -n) otherwise). A fresh machine may have no package lists
# yet, so the lists are updated only if the first try fails. On failure it prints the last
# lines of apt-get's output under WHO's name and exits 1.
apt_install() {
  local who=$1
  shift
  local log
  log=$(mktemp)
  export DEBIAN_FRONTEND=noninteractive
  local install=(apt-get install -y -qq --no-install-recommends "$@")
  if ! "${SUDO[@]}" "${install[@]}" >"$log" 2>&1; then
    if ! { "${SUDO[@]}" apt-get update -qq && "${SUDO[@]}" "${install[@]}"; } >"$log" 2>&1; then
      echo "$who: installing $* failed:" >&2
      tail -n 20 "$log" >&2
      rm -f "$log"
      exit 1
    fi
  fi
  rm -f "$log"
}
