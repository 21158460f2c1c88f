#!/usr/bin/env bash
# Build one image per service from the shared Dockerfile, tagged flotilla/<service>:<git sha>, :latest and :dev
# (the fixed tag the kind and minikube overlays name: k8s/components/local-images).
# Each image holds the chassis and one distribution: services/<service>, or devtools for `dev-issuer` (the
# dev token issuer that the kind/minikube setups run; no service image carries it).
#
#   scripts/build-images.sh [SERVICE...]     build these (default: every services/*/pyproject.toml, and dev-issuer)
#   scripts/build-images.sh --list [SERVICE...]
#                                            print "service image" lines (the commit's tag) and stop
#   scripts/build-images.sh --all-tags [SERVICE...]
#                                            print "service image" lines, one per tag a build makes, and stop
#
#   FLOTILLA_IMAGE_REPO   repository prefix (default flotilla)
#   FLOTILLA_IMAGE_TAG    tag (default: the commit, git rev-parse --short=12 HEAD)
#   FLOTILLA_DEV_TAG      the fixed local-cluster tag also given to every image (default dev)
#   FLOTILLA_BASE_IMAGE   base image (default: flotilla/base:bookworm when it exists, else python:3.12-slim)
#   FLOTILLA_CACERT       CA bundle handed to pip as the BuildKit secret `cacert`
#                         (default /etc/ssl/certs/ca-certificates.crt when it exists; empty to skip)
#   DOCKER                docker client to use (default: the first one that can build with BuildKit)
set -euo pipefail

cd "$(dirname "$0")/.."

say() { printf 'build-images: %s\n' "$*" >&2; }

repo=${FLOTILLA_IMAGE_REPO:-flotilla}
tag=${FLOTILLA_IMAGE_TAG:-$(git rev-parse --short=12 HEAD 2>/dev/null || echo dev)}
dev_tag=${FLOTILLA_DEV_TAG:-dev}
# Every tag a build gives each image, the commit's first; once each (without git the commit's tag is `dev` too).
tags=("$tag")
for extra in latest "$dev_tag"; do
    [[ " ${tags[*]} " == *" $extra "* ]] || tags+=("$extra")
done

list_only=0
case ${1:-} in
    --list) list_only=1 && shift ;;
    --all-tags) list_only=2 && shift ;;
esac

services=("$@")
if ((${#services[@]} == 0)); then
    for project in services/*/pyproject.toml; do
        [[ -e $project ]] && services+=("$(basename "$(dirname "$project")")")
    done
    services+=(dev-issuer)
fi

package_of() {
    if [[ $1 == dev-issuer ]]; then echo devtools; else echo "services/$1"; fi
}

if ((list_only)); then
    listed=("$tag")
    if ((list_only == 2)); then listed=("${tags[@]}"); fi
    for service in "${services[@]}"; do
        for each in "${listed[@]}"; do
            printf '%s %s/%s:%s\n' "$service" "$repo" "$service" "$each"
        done
    done
    exit 0
fi

if ((${#services[@]} == 0)); then
    say "no services found under services/"
    exit 1
fi

# `RUN --mount=type=secret` needs BuildKit. Docker >= 23 clients build with BuildKit only through the
# buildx plugin; older clients (Debian's docker.io 20.10) carry BuildKit themselves.
buildkit_client() {
    local candidate major
    for candidate in ${DOCKER:-} docker /usr/bin/docker; do
        command -v "$candidate" >/dev/null || continue
        if "$candidate" buildx version >/dev/null 2>&1; then
            echo "$candidate"
            return
        fi
        major=$("$candidate" version --format '{{.Client.Version}}' 2>/dev/null | cut -d. -f1)
        if [[ $major =~ ^[0-9]+$ ]] && ((major < 23)); then
            echo "$candidate"
            return
        fi
    done
    return 1
}
docker_cli=$(buildkit_client) || {
    say "no docker client here can build with BuildKit: install the buildx plugin (or Debian's docker.io)"
    exit 1
}
"$docker_cli" info >/dev/null 2>&1 || {
    say "no Docker engine answers: run scripts/docker-engine.sh"
    exit 1
}

base=${FLOTILLA_BASE_IMAGE:-}
if [[ -z $base ]]; then
    if "$docker_cli" image inspect flotilla/base:bookworm >/dev/null 2>&1; then
        base=flotilla/base:bookworm
    else
        base=python:3.12-slim
    fi
fi

cacert=${FLOTILLA_CACERT-/etc/ssl/certs/ca-certificates.crt}
secret=()
[[ -n $cacert && -r $cacert ]] && secret=(--secret "id=cacert,src=$cacert")

revision=$(git rev-parse HEAD 2>/dev/null || echo unknown)
project_version=$(python3 -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')
version="$project_version+$tag"
if [[ -n $(git status --porcelain -- flotilla services devtools pyproject.toml Dockerfile 2>/dev/null) ]]; then
    revision="$revision-dirty"
    version="$version.dirty"
fi
created=$(date -u +%Y-%m-%dT%H:%M:%SZ)

logs=$(mktemp -d "${TMPDIR:-/tmp}/flotilla-build.XXXXXX")
trap 'rm -rf "$logs"' EXIT

say "base $base, tags ${tags[*]}, client $docker_cli"
for service in "${services[@]}"; do
    package=$(package_of "$service")
    [[ -e $package/pyproject.toml ]] || { say "unknown service $service (no $package/pyproject.toml)"; exit 1; }
    image="$repo/$service:$tag"
    tag_args=()
    for each in "${tags[@]}"; do
        tag_args+=(--tag "$repo/$service:$each")
    done
    start=$SECONDS
    if ! DOCKER_BUILDKIT=1 "$docker_cli" build --network host --progress plain \
        "${secret[@]}" \
        --build-arg "BASE_IMAGE=$base" \
        --build-arg "SERVICE=$service" \
        --build-arg "PACKAGE=$package" \
        --build-arg "VERSION=$version" \
        --build-arg "REVISION=$revision" \
        --build-arg "CREATED=$created" \
        "${tag_args[@]}" \
        . >"$logs/$service.log" 2>&1; then
        tail -n 40 "$logs/$service.log" >&2
        say "FAILED $image"
        exit 1
    fi
    size=$("$docker_cli" image inspect --format '{{.Size}}' "$image")
    say "built $image ($(awk -v b="$size" 'BEGIN { printf "%.1f", b / 1e6 }') MB) in $((SECONDS - start))s"
done
