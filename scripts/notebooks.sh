#!/usr/bin/env bash
# The notebooks' kernel and their headless execution (`make notebooks`, `make notebooks-serve`).
#
#   scripts/notebooks.sh kernel EVCXR_JUPYTER   register the evcxr kernel inside .venv
#   scripts/notebooks.sh execute NOTEBOOK...    execute each into target/notebooks/ (.ipynb and
#                                               .html), failing on the first cell error
#
# The kernel builds each notebook's code in one project-local directory kept between runs
# (.tools/notebook-build, evcxr's EVCXR_TMPDIR): a warm run compiles only the cells, not the
# results crate and polars. The workspace's Cargo.lock is copied there before each run, so a
# notebook builds the dependency versions the tests build.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
venv=$root/.venv
build=$root/.tools/notebook-build
config=$root/.tools/evcxr-config

case "${1:-}" in
kernel)
    evcxr=$(realpath "$2")
    dir=$venv/share/jupyter/kernels/rust
    mkdir -p "$dir" "$build" "$config"
    # An empty evcxr config directory: a user's ~/.config/evcxr (its deps, its prelude) does
    # not reach these notebooks.
    "$venv/bin/python" - "$evcxr" "$build" "$config" "$dir/kernel.json" <<'PY'
import json, sys
evcxr, build, config, out = sys.argv[1:]
spec = {
    "argv": [evcxr, "--control_file", "{connection_file}"],
    "display_name": "Rust (evcxr)",
    "language": "rust",
    "interrupt_mode": "message",
    "env": {"EVCXR_TMPDIR": build, "EVCXR_CONFIG_DIR": config},
}
with open(out, "w") as f:
    json.dump(spec, f, indent=1)
    f.write("\n")
PY
    echo "kernel registered: $dir/kernel.json"
    ;;
execute)
    shift
    out=$root/target/notebooks
    mkdir -p "$out" "$build"
    cp Cargo.lock "$build/Cargo.lock"
    export JUPYTER_PREFER_ENV_PATH=1
    for nb in "$@"; do
        name=$(basename "$nb")
        start=$(date +%s)
        # nbconvert fails on the first cell that errors (a compile error included).
        "$venv/bin/jupyter" nbconvert --to notebook --execute \
            --ExecutePreprocessor.timeout=1800 --ExecutePreprocessor.kernel_name=rust \
            --output-dir "$out" "$nb"
        "$venv/bin/jupyter" nbconvert --to html --output-dir "$out" "$out/$name"
        "$venv/bin/python" - "$out/$name" "$(($(date +%s) - start))" <<'PY'
import json, sys
from datetime import datetime
path, wall = sys.argv[1], int(sys.argv[2])
cells = [c for c in json.load(open(path))["cells"] if c["cell_type"] == "code"]
def seconds(c):
    t = c.get("metadata", {}).get("execution", {})
    a, b = t.get("iopub.execute_input"), t.get("shell.execute_reply")
    if not (a and b):
        return None
    p = lambda s: datetime.fromisoformat(s.replace("Z", "+00:00"))
    return (p(b) - p(a)).total_seconds()
times = [seconds(c) for c in cells]
known = [t for t in times if t is not None]
first = f"{times[0]:.1f} s" if times and times[0] is not None else "unknown"
print(f"NOTEBOOK {path}: {len(cells)} code cells, first cell {first}, "
      f"all cells {sum(known):.1f} s, wall {wall} s (with kernel start and HTML export)")
PY
    done
    ;;
*)
    echo "usage: $0 kernel EVCXR_JUPYTER | execute NOTEBOOK..." >&2
    exit 2
    ;;
esac
