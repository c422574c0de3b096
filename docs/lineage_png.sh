#!/usr/bin/env bash
# Screenshots of the kedro-viz lineage for the docs (docs/img/lineage_<pipeline>.png), taken as
# `make viz-check` takes its own: `kedro viz build` on a copy of the project, the static site
# served on loopback, Debian's chromium headless and offline. Before the shots, one page of the same
# origin stores kedro-viz's UI settings (dark theme, no feature-hint tour, no minimap).
# Run from the repository root with the Makefile's environment: `source /work/helper_env.sh` or
# `make viz-browser` first, then `bash docs/lineage_png.sh [pipeline ...]` (default: __default__ generate).
set -euo pipefail
root=$(pwd)
work=$(mktemp -d)
trap 'kill "${server:-0}" 2>/dev/null || true; rm -rf "$work"' EXIT
cp pyproject.toml "$work/" && cp -r conf "$work/conf" && rm -f "$work/conf/local/credentials.yml"
mkdir -p "$work/src" "$work/conf/local"
(cd "$work" && KEDRO_DISABLE_TELEMETRY=true DO_NOT_TRACK=1 PYTHONPATH="$root:$root/src" \
  "$root/.venv/bin/kedro" viz build > "$work/build.log" 2>&1) || { tail -20 "$work/build.log"; exit 1; }
cat > "$work/build/seed.html" <<'HTML'
<html><body><script>localStorage.setItem("KedroViz", JSON.stringify({showFeatureHints: false,
theme: "dark", visible: {miniMap: false, sidebar: true}}));</script></body></html>
HTML
port=$("$root/.venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$root/.venv/bin/python" -m http.server -d "$work/build" -b 127.0.0.1 "$port" > /dev/null 2>&1 &
server=$!
sleep 2
browser=(chromium --headless --no-sandbox --disable-gpu --no-first-run --hide-scrollbars
         "--user-data-dir=$work/profile" "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1")
"${browser[@]}" --dump-dom "http://127.0.0.1:$port/seed.html" > /dev/null 2>&1
for pipeline in "${@:-__default__ generate}"; do
  for name in $pipeline; do
    "${browser[@]}" --window-size=1600,1000 --virtual-time-budget=15000 \
      "--screenshot=$root/docs/img/lineage_${name//_/}.png" "http://127.0.0.1:$port/?pid=$name" > /dev/null 2>&1
    echo "docs/img/lineage_${name//_/}.png"
  done
done
