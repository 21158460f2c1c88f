#!/usr/bin/env bash
# Make sure a Docker engine answers: install docker.io and debootstrap when they are missing, then start
# dockerd without its bridge (no traffic to private-range addresses; containers use host networking).
# Safe to re-run: it does nothing when an engine already answers.
#
#   FLOTILLA_DOCKERD_LOG   where dockerd writes its log (default /var/log/flotilla-dockerd.log)
#   FLOTILLA_DOCKERD_WAIT  seconds to wait for the engine to answer (default 60)
set -euo pipefail

log_file=${FLOTILLA_DOCKERD_LOG:-/var/log/flotilla-dockerd.log}
wait_seconds=${FLOTILLA_DOCKERD_WAIT:-60}

say() { printf 'docker-engine: %s\n' "$*" >&2; }

engine_answers() { docker info >/dev/null 2>&1; }

if command -v docker >/dev/null && engine_answers; then
    say "engine already answering"
    exit 0
fi

missing=()
command -v dockerd >/dev/null || missing+=(docker.io)
command -v debootstrap >/dev/null || missing+=(debootstrap)
if ((${#missing[@]})); then
    if [[ $(id -u) != 0 ]]; then
        say "need root to install ${missing[*]}"
        exit 1
    fi
    say "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! pgrep -x dockerd >/dev/null; then
    say "starting dockerd (log: $log_file)"
    mkdir -p "$(dirname "$log_file")"
    # setsid + nohup: the engine outlives this script and the shell that called it.
    setsid nohup dockerd --bridge=none --iptables=false --ip-masq=false \
        >>"$log_file" 2>&1 </dev/null &
fi

for ((i = 0; i < wait_seconds * 2; i++)); do
    if engine_answers; then
        say "engine ready ($(docker version --format '{{.Server.Version}}' 2>/dev/null))"
        exit 0
    fi
    sleep 0.5
done
say "no answer from dockerd after ${wait_seconds}s; last lines of $log_file:"
tail -n 20 "$log_file" >&2 || true
exit 1
