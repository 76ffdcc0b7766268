#!/usr/bin/env bash
# Installs the Debian packages listed in scripts/apt/*.txt that are not installed yet.
# Each plugin keeps its own list; "#" starts a comment. Needs root (or sudo) and apt.
# Usage: install-system.sh [LIST ...]   (list names without .txt; default: every list)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
if [ $# -gt 0 ]; then lists=$(printf "$here/apt/%s.txt " "$@"); else lists=$(ls "$here"/apt/*.txt); fi
# shellcheck disable=SC2086
wanted=$(grep -hv '^\s*#' $lists | tr -s ' \n' '\n' | sort -u | sed '/^$/d')
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
