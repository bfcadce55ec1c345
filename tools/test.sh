#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs what it needs, then runs
# the linters, the type checker and pytest. Used verbatim by README and CI.
set -euo pipefail
cd "$(dirname "$0")/.."

# System packages for the QGIS, GDAL-validator and browser tests. Optional: those
# tests skip with a stated reason if this cannot install them (not root, no apt).
need_apt=()
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
/usr/bin/python3 -c "import qgis.core" 2>/dev/null || need_apt+=(python3-qgis)
/usr/bin/python3 -c "import osgeo_utils" 2>/dev/null || need_apt+=(python3-gdal gdal-bin)
if [ ${#need_apt[@]} -gt 0 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "installing system packages: ${need_apt[*]}"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      "${need_apt[@]}" >/dev/null) || echo "warning: apt could not install ${need_apt[*]}; those tests will skip"
fi

# LightGBM's OpenMP threads spin-wait otherwise, which is very slow on shared CI cores.
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"

python -m pip install -q --disable-pip-version-check -e ".[dev]"
python -m ruff check .
python tools/typecheck.py
python -m pytest "$@"
