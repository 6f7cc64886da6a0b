#!/usr/bin/env bash
# Builds the regcache Debian package (make deb) and checks it with lintian.
#   packaging/build-deb.sh
# Installs the build dependencies it lacks through apt, builds a copy of the
# source tree in build/deb/src (packaging/debian becomes its debian/), leaves
# build/regcache_<version>_<arch>.deb, and fails unless lintian reports no
# errors and no warnings.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"

# Packaging tools plus the Build-Depends of packaging/debian/control.
packages=(dpkg-dev debhelper fakeroot lintian
          make cmake g++ pkg-config libpoco-dev libssl-dev libsqlite3-dev libpq-dev nlohmann-json3-dev doctest-dev)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "build-deb: installing ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

version="$(dpkg-parsechangelog -l packaging/debian/changelog -S Version)"
arch="$(dpkg --print-architecture)"
deb="regcache_${version}_${arch}.deb"

# dpkg-buildpackage wants debian/ at the source root and writes its results
# next to it: work in a copy so the repository stays clean.
work="$root/build/deb"
rm -rf "$work"
mkdir -p "$work/src"
# Marks the moment of the snapshot: test-package.sh rebuilds when a source
# file is newer (edits made during a build are caught too).
touch "$work/source.stamp"
tar -C "$root" -cf - \
    --exclude=./build --exclude=./.git --exclude=./data --exclude=./packaging \
    --exclude='./regcache_*.deb' . | tar -C "$work/src" -xf -
cp -a packaging/debian "$work/src/debian"

echo "build-deb: building $deb"
(cd "$work/src" && DEB_BUILD_OPTIONS="parallel=$(nproc) ${DEB_BUILD_OPTIONS:-}" \
    dpkg-buildpackage -b -us -uc)

cp "$work/$deb" "$root/build/$deb"
echo "build-deb: wrote build/$deb"

# Errors and warnings fail the build; informational tags are shown only.
changes="$work/regcache_${version}_${arch}.changes"
echo "build-deb: lintian $(basename "$changes")"
lintian --info --display-info --fail-on error,warning "$changes"
echo "build-deb: lintian reported no errors and no warnings"
