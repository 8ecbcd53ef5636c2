#!/usr/bin/env bash
# Fetches Debian's 6.12 amd64 kernel package and extracts an uncompressed vmlinux from its
# bzImage. Prints the path of the vmlinux. Cached under guest-images/linux/cache/.
#   guest-images/linux/fetch-kernel.sh            -> .../cache/vmlinux-<version>
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache="$here/cache"
mkdir -p "$cache"

pkg=$(apt-cache search --names-only '^linux-image-6\.12\.[0-9.]+\+deb[0-9]+-amd64-unsigned$' \
  | awk '{print $1}' | sort -V | tail -n 1)
if [ -z "$pkg" ]; then
  apt-get update -q >&2
  pkg=$(apt-cache search --names-only '^linux-image-6\.12\.[0-9.]+\+deb[0-9]+-amd64-unsigned$' \
    | awk '{print $1}' | sort -V | tail -n 1)
fi
[ -n "$pkg" ] || { echo "no linux-image-6.12*-amd64-unsigned package in the apt lists" >&2; exit 1; }
version=${pkg#linux-image-}
version=${version%-unsigned}
out="$cache/vmlinux-$version"
if [ -s "$out" ]; then
  echo "$out"
  exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && apt-get download -q "$pkg" >&2)
dpkg-deb -x "$work"/*.deb "$work/root"
cp "$work/root/boot/vmlinuz-$version" "$cache/bzImage-$version"
python3 "$here/extract_vmlinux.py" "$cache/bzImage-$version" "$out.tmp"
mv "$out.tmp" "$out"
echo "$out"
