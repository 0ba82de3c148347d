#!/usr/bin/env bash
# Vendors the browser libraries /docs and the console use into web/vendor/ (not committed), from pinned npm
# packages checked against the SHA-256 of their tarballs. Served by the local server; nothing loads from a CDN.
set -euo pipefail
cd "$(dirname "$0")"
# package version sha256-of-the-npm-tarball files-to-keep (paths inside the package)
PACKAGES=(
  "swagger-ui-dist 5.35.0 1b8e891893404ea4c3558b6a87e2a3e494e7eedba41168c2ece5800a391a6ea6 swagger-ui-bundle.js swagger-ui.css LICENSE"
  "chart.js 4.5.1 f540d98468457ac7a0aabb32006dfb066297e096c5ea063a5d80aa973d1c337a dist/chart.umd.min.js LICENSE.md"
)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for entry in "${PACKAGES[@]}"; do
  read -r name version sha files <<<"$entry"
  (cd "$work" && npm pack --silent "$name@$version" >/dev/null)
  tarball="$work/$(echo "$name" | tr -d '@' | tr '/' '-')-$version.tgz"
  echo "$sha  $tarball" | sha256sum --check --quiet
  mkdir -p "$work/$name" "vendor/$name"
  tar -xzf "$tarball" -C "$work/$name"
  for file in $files; do install -m 0644 "$work/$name/package/$file" "vendor/$name/$(basename "$file")"; done
  echo "vendored $name@$version"
done
touch vendor/.vendored
