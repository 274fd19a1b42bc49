#!/usr/bin/env bash
# Build kvfs and mount it on the default store, on a fresh Debian 12 machine:
#
#   bash tools/kvfs-mount.sh [MOUNTPOINT]        (default MOUNTPOINT: ~/kvfs)
#
# Installs what is missing (apt-get), builds a Release tree in build-release/, installs the
# daemon and its man pages under /usr/local, creates MOUNTPOINT, and mounts the default store
# ~/.local/share/kvfs/default.kvfs there (created on first use).  Unmount: fusermount3 -u MNT.
set -euo pipefail
cd "$(dirname "$0")/.."

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
pkgs=(cmake gcc make pkg-config libfuse3-dev fuse3 libxxhash-dev)
missing=()
for p in "${pkgs[@]}"; do
  case $(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true) in
  *" ok installed") ;;
  *) missing+=("$p") ;;
  esac
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"
fi

cmake -S . -B build-release -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build-release -j "$(nproc 2>/dev/null || echo 2)"
$sudo cmake --install build-release >/dev/null

mnt=${1:-$HOME/kvfs}
mkdir -p "$mnt"
if grep -q " $(realpath "$mnt") fuse.kvfs " /proc/mounts; then
  echo "kvfs is already mounted at $mnt"
  exit 0
fi
kvfs "$mnt"
echo "kvfs is mounted at $mnt (store: \${XDG_DATA_HOME:-~/.local/share}/kvfs/default.kvfs)"
echo "try: mkdir $mnt/user; echo alice > $mnt/user/1001; cat $mnt/user/1001; ls $mnt/user"
echo "unmount: fusermount3 -u $mnt"
