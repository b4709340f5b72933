#!/usr/bin/env bash
# Make sure headless Chromium and poppler's command-line tools are on this machine: the hub
# prints the annual report to PDF with Chromium (hub/pdf.py, driven by Playwright, whose own
# browser downloads are not used), and the browser and PDF tests (tests/browser.py) open
# pages in it and read the PDFs back with pdfinfo, pdftoppm and pdftotext.
#
# Idempotent and quiet: it says nothing when everything is there already. As root (or with
# password-less sudo) it installs Debian's `chromium`, `poppler-utils` and
# `fonts-dejavu-core` (a font with the Nordic letters, so the PDF never falls back to
# boxes) when a program is missing. Without root it cannot install: it warns with what to
# install by hand and the tests skip, except under CI (CI set), where that is an error.
# EMSBENCH_CHROMIUM names another Chromium or Chrome binary to use instead of Debian's.
set -euo pipefail

# The same search as hub.pdf.find_chromium: EMSBENCH_CHROMIUM, else one on PATH.
have_chromium() {
  if [ -n "${EMSBENCH_CHROMIUM:-}" ]; then [ -x "$EMSBENCH_CHROMIUM" ]; return; fi
  command -v chromium >/dev/null || command -v chromium-browser >/dev/null \
    || command -v google-chrome >/dev/null
}

have_poppler() {
  command -v pdfinfo >/dev/null && command -v pdftoppm >/dev/null \
    && command -v pdftotext >/dev/null
}

# The Debian packages this machine still needs, space-separated (empty: nothing to do).
missing() {
  local need=()
  have_chromium || need+=(chromium)
  have_poppler || need+=(poppler-utils)
  [ -d /usr/share/fonts/truetype/dejavu ] || need+=(fonts-dejavu-core)
  echo "${need[*]}"
}

in_ci() {
  case "${CI:-}" in ""|0|false|False|FALSE) return 1 ;; *) return 0 ;; esac
}

if [ -n "${EMSBENCH_CHROMIUM:-}" ] && [ ! -x "$EMSBENCH_CHROMIUM" ]; then
  echo "browser.sh: EMSBENCH_CHROMIUM=$EMSBENCH_CHROMIUM is not an executable file" >&2
  exit 1
fi
need=$(missing)
[ -z "$need" ] && exit 0

if [ "$(id -u)" -eq 0 ]; then
  SUDO=()
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
  SUDO=(sudo -n)
else
  msg="browser.sh: installing needs root: apt-get install --no-install-recommends $need"
  case " $need " in *" chromium "*) msg+=" (or set EMSBENCH_CHROMIUM to a Chrome binary)";; esac
  msg+="; until then the report's PDF cannot be written and the browser and PDF tests skip"
  if in_ci; then echo "$msg" >&2; exit 1; fi
  echo "$msg" >&2
  exit 0
fi

if ! command -v apt-get >/dev/null; then
  echo "browser.sh: no apt-get here; install Chromium (or set EMSBENCH_CHROMIUM to a" \
    "Chrome binary), poppler's pdfinfo, pdftoppm and pdftotext, and the DejaVu fonts" \
    "by hand" >&2
  exit 1
fi

# Only what is missing: naming an installed package would upgrade it as a side effect.
read -ra packages <<<"$need"
# shellcheck source=apt-install.sh
. "$(dirname "$0")/apt-install.sh"
apt_install browser.sh "${packages[@]}"
have_chromium || { echo "browser.sh: installed, but no chromium on PATH" >&2; exit 1; }
have_poppler || { echo "browser.sh: installed, but pdfinfo/pdftoppm/pdftotext missing" >&2
                  exit 1; }
