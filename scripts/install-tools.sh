#!/usr/bin/env bash
# The real S3 clients the end-to-end tests drive, from Debian's packages (when root and missing).
set -euo pipefail
missing=()
for tool in rclone restic s3cmd curl; do
    command -v "$tool" >/dev/null || missing+=("$tool")
done
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "installing ${missing[*]} from Debian's packages" >&2
        apt-get update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    else
        echo "missing ${missing[*]}: install them (apt-get install ${missing[*]})" >&2
        exit 1
    fi
fi
