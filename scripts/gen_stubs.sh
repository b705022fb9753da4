#!/usr/bin/env bash
# Regenerate the type stub of the compiled core, python/mgfast/_core.pyi, from the built module
# (pybind11-stubgen, completed by scripts/stubs.py), then check it with mypy's stubtest; where
# mgfast._gpu imports (built with CUDA and cuDNN), check its hand-written stub with stubtest too.
# Needs mgfast installed (pip install -e ".[test]" builds it; rerun after changing a binding).
# `--check`: only say whether _core.pyi is current (exit 1 if not), as tests/test_stubs.py does.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = "--check" ]; then
  exec python scripts/stubs.py check
fi
python scripts/stubs.py write
python -m mypy.stubtest mgfast._core --allowlist scripts/stubtest_allowlist.txt
if python -c "import mgfast._gpu" 2>/dev/null; then
  python -m mypy.stubtest mgfast._gpu --allowlist scripts/stubtest_allowlist.txt \
    --allowlist scripts/stubtest_allowlist_gpu.txt
else
  echo "mgfast._gpu does not import here: its stub (python/mgfast/_gpu.pyi) is kept as written"
fi
