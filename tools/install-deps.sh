#!/usr/bin/env bash
# Installs the Debian 12 packages groupgrad builds with, if any are missing. Run as root.
set -euo pipefail
packages=(
  g++ cmake ninja-build
  libdnnl-dev libfmt-dev libspdlog-dev nlohmann-json3-dev  # the library
  catch2 libcli11-dev                                        # tests and tools
  wamerican                                                  # the training example's word list
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ] || [ "${GG_APT_UPDATE:-0}" = 1 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  [ ${#missing[@]} -eq 0 ] || apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
