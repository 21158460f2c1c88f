#!/usr/bin/env bash
# Print one "service size_MB" line per built service image (the tags scripts/build-images.sh makes,
# falling back to :latest). Images that are not built are named on stderr and left out.
set -euo pipefail

cd "$(dirname "$0")/.."

repo=${FLOTILLA_IMAGE_REPO:-flotilla}
scripts/build-images.sh --list "$@" | while read -r service image; do
    size=$(docker image inspect --format '{{.Size}}' "$image" 2>/dev/null \
        || docker image inspect --format '{{.Size}}' "$repo/$service:latest" 2>/dev/null) || {
        printf 'image-sizes: %s is not built (make images)\n' "$image" >&2
        continue
    }
    awk -v s="$service" -v b="$size" 'BEGIN { printf "%s %.1f\n", s, b / 1e6 }'
done
