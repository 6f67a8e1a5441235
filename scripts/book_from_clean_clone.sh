#!/usr/bin/env bash
# The book's release check: build it (`make book`, the cpu profile unless LLMBOOK_PROFILE says
# otherwise) from a clean clone of the committed HEAD, as a new reader would, and report the
# result, the wall time (installation included) and the seconds each notebook executed for.
# Run it before calling an issue that touches notebooks/ or src/ resolved; quote its last lines.
# A passing build also rewrites src/llmbook/core/timings.json here (the chapters' boxes).
#   scripts/book_from_clean_clone.sh [directory]    (default: a new directory under /tmp)
# Given the directory of a build that was stopped (a session's end, a reboot), it continues that
# build instead: same clone, same commit, the notebooks already executed reused from its
# jupyter-cache and the trained runs from its runs/.  Each invocation's wall time is appended to
# walls.txt there; the report gives their sum.
set -uo pipefail
top=$(git rev-parse --show-toplevel)
dir=${1:-$(mktemp -d /tmp/llmbook-book.XXXXXX)}
if [ -f "$dir/walls.txt" ]; then
  echo "continuing the build in $dir ($(git -C "$dir" rev-parse --short HEAD); HEAD here is" \
       "$(git rev-parse --short HEAD))"
else
  git clone -q "$top" "$dir" || exit 1
fi
cd "$dir" || exit 1
start=$(date +%s)
echo "started $(date -u +%FT%TZ)" >> walls.txt
make book >> book.log 2>&1
status=$?
seconds=$(( $(date +%s) - start ))
echo "$seconds s, make book exited $status" >> walls.txt
seconds=$(awk '/ s, make book exited/ {s += $1} END {print s}' walls.txt)
echo "clean clone of $(git rev-parse --short HEAD) in $dir (log: $dir/book.log)"
echo "make book exited $status after $((seconds / 3600)) h $((seconds % 3600 / 60)) min" \
     "$((seconds % 60)) s ($(grep -c ' s, make book exited' walls.txt) invocation(s): walls.txt)"
.venv/bin/python - <<'PY'
from pathlib import Path

from jupyter_cache import get_cache

cache = get_cache("_build/.jupyter_cache")
rows = sorted((Path(r.uri).name, r.data.get("execution_seconds")) for r in cache.list_cache_records())
for name, seconds in rows:
    print(f"{name:45} {seconds:8.0f} s" if seconds is not None else f"{name:45}  no time")
failed = [Path(p.uri).name for p in cache.list_project_records() if p.traceback]
print("failed to execute:", ", ".join(failed) or "none")
PY
# A passing build's seconds and runs/ ledger become the timings each chapter's box shows
# (src/llmbook/core/timings.json in the checkout this was cloned from: commit it).
if [ "$status" -eq 0 ]; then
  gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)
  .venv/bin/python scripts/write_timings.py "${LLMBOOK_PROFILE:-cpu}" \
    "$(nproc) cores, ${gpu:-no GPU}" "$top/src/llmbook/core/timings.json"
fi
exit $status
