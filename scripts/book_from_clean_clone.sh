#!/usr/bin/env bash
# The book's release check: build it (`make book`, the cpu profile unless LLMBOOK_PROFILE says
# otherwise) from a clean clone of the committed HEAD, as a new reader would, and report the
# result, the wall time (installation included) and the seconds each notebook executed for.
# Run it before calling an issue that touches notebooks/ or src/ resolved; quote its last lines.
# A passing build also rewrites src/llmbook/core/timings.json here (the chapters' boxes).
#   scripts/book_from_clean_clone.sh [directory]    (default: a new directory under /tmp)
set -uo pipefail
top=$(git rev-parse --show-toplevel)
dir=${1:-$(mktemp -d /tmp/llmbook-book.XXXXXX)}
git clone -q "$top" "$dir" || exit 1
cd "$dir" || exit 1
start=$(date +%s)
make book > book.log 2>&1
status=$?
seconds=$(( $(date +%s) - start ))
echo "clean clone of $(git rev-parse --short HEAD) in $dir (log: $dir/book.log)"
echo "make book exited $status after $((seconds / 3600)) h $((seconds % 3600 / 60)) min $((seconds % 60)) s"
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
