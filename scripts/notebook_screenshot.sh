#!/usr/bin/env bash
# The README's picture of a rendered notebook figure: the HTML export of an executed notebook
# (target/notebooks/, from `make notebooks`) with every cell hidden but the named ones, shot by
# headless Chromium (Debian: apt-get install chromium).
#   scripts/notebook_screenshot.sh HTML OUT.png CELL_ID...
set -euo pipefail
html=$1 out=$2
shift 2
shown=$(printf '[id="cell-id=%s"],' "$@")
page=$(mktemp --suffix=.html)
trap 'rm -f "$page"' EXIT
python3 - "$html" "$page" "${shown%,}" <<'PY'
import sys
src, dst, shown = sys.argv[1:]
css = ("<style>.jp-Cell{display:none !important}" + shown + "{display:block !important}"
       "body{margin:0 !important;padding:8px !important;width:1000px}</style></head>")
open(dst, "w").write(open(src).read().replace("</head>", css, 1))
PY
chromium --headless=new --no-sandbox --disable-gpu --hide-scrollbars --window-size=1060,660 \
    --virtual-time-budget=8000 --screenshot="$out" "file://$page" 2>/dev/null
echo "wrote $out"
