#!/usr/bin/env bash
# Installs the Debian packages listed in scripts/apt/*.txt that are not installed yet.
# Each plugin keeps its own list; "#" starts a comment. Needs root (or sudo) and apt.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
wanted=$(grep -hv '^\s*#' "$here"/apt/*.txt | tr -s ' \n' '\n' | sort -u | sed '/^$/d')
missing=()
for pkg in $wanted; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if ! command -v apt-get >/dev/null; then
  echo "install-system: apt-get not found; install these yourself: ${missing[*]}" >&2
  exit 0
fi
sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
echo "install-system: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
