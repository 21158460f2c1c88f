#!/usr/bin/env bash
# Build the local Debian base image (debootstrap minbase + python3) for machines that cannot pull
# python:3.12-slim. Safe to re-run: it skips the build when the image already carries this recipe's digest.
#
#   FLOTILLA_BASE_IMAGE    tag to build (default flotilla/base:bookworm)
#   FLOTILLA_DEBIAN_MIRROR Debian mirror (default http://deb.debian.org/debian)
#   FLOTILLA_BASE_REBUILD  set to 1 to rebuild even when the image is up to date
set -euo pipefail

image=${FLOTILLA_BASE_IMAGE:-flotilla/base:bookworm}
mirror=${FLOTILLA_DEBIAN_MIRROR:-http://deb.debian.org/debian}
suite=bookworm
packages=python3,python3-venv,ca-certificates

say() { printf 'base-image: %s\n' "$*" >&2; }

# The recipe digest covers this script and its inputs, so a changed recipe means a rebuild.
recipe=$( { cat "$0"; echo "$suite $packages $mirror"; } | sha256sum | cut -c1-16)
have=$(docker image inspect --format '{{ index .Config.Labels "org.flotilla.base.recipe" }}' "$image" 2>/dev/null || true)
if [[ $have == "$recipe" && ${FLOTILLA_BASE_REBUILD:-0} != 1 ]]; then
    say "$image is up to date (recipe $recipe)"
    exit 0
fi

command -v debootstrap >/dev/null || { say "debootstrap is missing: run scripts/docker-engine.sh (or apt-get install debootstrap)"; exit 1; }
[[ $(id -u) == 0 ]] || { say "debootstrap needs root"; exit 1; }

rootfs=$(mktemp -d "${TMPDIR:-/tmp}/flotilla-rootfs.XXXXXX")
trap 'rm -rf "$rootfs"' EXIT

start=$SECONDS
say "debootstrap $suite ($packages) into $rootfs"
debootstrap --variant=minbase --include="$packages" "$suite" "$rootfs" "$mirror" >"$rootfs.log" 2>&1 || {
    tail -n 30 "$rootfs.log" >&2
    rm -f "$rootfs.log"
    exit 1
}
rm -f "$rootfs.log"

# Slim the tree: nothing here is needed to run Python; apt still works after an `apt-get update`.
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/lib/apt/lists/* \
    "$rootfs"/var/log/* "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* \
    "$rootfs"/usr/share/locale/* "$rootfs"/usr/share/lintian "$rootfs"/tmp/* "$rootfs"/var/tmp/*
# glibc's iconv modules (Python has its own codecs) and CPython's own test suite.
rm -rf "$rootfs"/usr/lib/x86_64-linux-gnu/gconv "$rootfs"/usr/lib/python3.*/test
# Keep apt from bringing the docs back in images built from this base.
cat >"$rootfs/etc/dpkg/dpkg.cfg.d/flotilla-nodoc" <<'CFG'
path-exclude /usr/share/doc/*
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
CFG
printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n' \
    >"$rootfs/etc/apt/apt.conf.d/90flotilla-norecommends"
printf 'deb %s %s main\ndeb %s %s-updates main\n' "$mirror" "$suite" "$mirror" "$suite" \
    >"$rootfs/etc/apt/sources.list"
: >"$rootfs/etc/machine-id"
python_version=$(chroot "$rootfs" python3 -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])')

tar --numeric-owner -C "$rootfs" -c . | docker import \
    --change 'ENV LANG=C.UTF-8 PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["python3"]' \
    --change "LABEL org.flotilla.base.recipe=$recipe org.opencontainers.image.base.name=debian:$suite org.flotilla.python.version=$python_version" \
    --message "debootstrap --variant=minbase $suite + $packages" \
    - "$image" >/dev/null

size=$(docker image inspect --format '{{.Size}}' "$image")
say "built $image (python $python_version, $((size / 1000000)) MB) in $((SECONDS - start))s"
