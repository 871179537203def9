#!/usr/bin/env bash
# Screenshot a charts index as a person sees it: headless Chromium renders
# index.html to a PNG, to look at before a change to harness/src/plot/
# lands.
#
#   harness/scripts/screenshot-index.sh CHARTS_DIR [OUT.png] [WIDTHxHEIGHT]
#
# CHARTS_DIR is what `harness plot --out` wrote (it holds index.html).
# Default output: CHARTS_DIR/index.png at 1400x2000. Needs Debian's
# `chromium` (apt-get install -y chromium).
set -euo pipefail

dir=${1:?usage: $0 CHARTS_DIR [OUT.png] [WIDTHxHEIGHT]}
out=${2:-$dir/index.png}
size=${3:-1400x2000}
page=$(cd "$dir" && pwd)/index.html
[[ -f $page ]] || { echo "$0: no index.html in $dir (run harness plot first)" >&2; exit 1; }
browser=$(command -v chromium || command -v chromium-browser || true)
[[ -n $browser ]] || { echo "$0: chromium not found: apt-get install -y chromium" >&2; exit 1; }
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
case $out in /*) ;; *) out=$PWD/$out ;; esac
"$browser" --headless --no-sandbox --disable-gpu --disable-background-networking \
    --disable-component-update --disable-sync --no-first-run \
    --user-data-dir="$profile" --hide-scrollbars \
    --screenshot="$out" --window-size="${size/x/,}" "file://$page" >/dev/null 2>&1
[[ -s $out ]] || { echo "$0: chromium wrote no screenshot" >&2; exit 1; }
echo "$out"
