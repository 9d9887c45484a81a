#!/usr/bin/env bash
# Build the xnat-resource-survey image: a plain build of the Dockerfile, after checking the commands.
#
#   container/build.sh [TAG] [extra build arguments ...]
#
# The Dockerfile carries the org.nrg.commands label literally (generated from command.json, the list of the
# image's commands, by container/label.py --write), so no build argument is needed and
# `docker build -t TAG .` makes the same image. This script first validates both commands and refuses to
# build when the Dockerfile's label is stale.
#
# TAG defaults to the "image" of command.json's first command (xnat-resource-survey:<version>). The builder is, in order:
# $BUILDER if set (docker | podman | buildah | local), docker when a Docker engine answers, the podman/buildah
# helper of this machine ($LOCAL_IMAGE_SH, default /work/shared/tools/local-image.sh), else podman build.
# Environment: PYTHON (default python3) runs the generator; BASE_IMAGE overrides the Dockerfile's base.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
python=${PYTHON:-python3}
local_image_sh=${LOCAL_IMAGE_SH:-/work/shared/tools/local-image.sh}

"$python" "$root/container/validate_command.py" "$root/command.json" >&2
"$python" "$root/container/label.py" --check --dockerfile "$root/Dockerfile"
default_tag=$("$python" -c 'import json, sys; print(json.load(open(sys.argv[1]))[0]["image"])' "$root/command.json")
tag=${1:-$default_tag}
[ "$#" -gt 0 ] && shift

args=()
if [ -n "${BASE_IMAGE:-}" ]; then
  args+=(--build-arg "BASE_IMAGE=$BASE_IMAGE")
fi

builder=${BUILDER:-}
if [ -z "$builder" ]; then
  if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
    builder=docker
  elif [ -f "$local_image_sh" ]; then
    builder=local
  elif command -v podman >/dev/null 2>&1; then
    builder=podman
  else
    builder=buildah
  fi
fi

echo "build.sh: building $tag with $builder" >&2
case "$builder" in
  docker) docker build ${args[@]+"${args[@]}"} -t "$tag" "$@" "$root" ;;
  podman) podman build ${args[@]+"${args[@]}"} -t "$tag" "$@" "$root" ;;
  buildah) buildah bud ${args[@]+"${args[@]}"} -t "$tag" "$@" "$root" ;;
  local)
    # shellcheck source=/dev/null
    source "$local_image_sh"
    # local_build passes its own BASE_IMAGE (the local stand-in for python:3.11-slim) first; a
    # BASE_IMAGE given here comes later on the command line and wins.
    local_build "$root" "$tag" ${args[@]+"${args[@]}"} "$@"
    ;;
  *) echo "build.sh: unknown BUILDER $builder (docker | podman | buildah | local)" >&2; exit 2 ;;
esac
echo "$tag"
