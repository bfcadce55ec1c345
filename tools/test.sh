#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs what it needs, then runs
# the linters, the type checker and pytest. Used verbatim by README and CI.
#
# Python packages go into a virtual environment of its own (.venv-test, or
# $REGENMAP_TEST_VENV), so the suite is immune to whatever was installed before
# (e.g. `pip install .` of the README's first command). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

# System packages for the QGIS, GDAL-validator, browser and SLURM tests. Optional: those
# tests skip with a stated reason if this cannot install them (not root, no apt).
need_apt=()
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
/usr/bin/python3 -c "import qgis.core" 2>/dev/null || need_apt+=(python3-qgis)
/usr/bin/python3 -c "import osgeo_utils" 2>/dev/null || need_apt+=(python3-gdal gdal-bin)
for pkg in slurmctld slurmd slurm-client munge; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
done
if [ ${#need_apt[@]} -gt 0 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "installing system packages: ${need_apt[*]}"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      "${need_apt[@]}" >/dev/null) || echo "warning: apt could not install ${need_apt[*]}; those tests will skip"
fi

# A single-node SLURM cluster on localhost for the SLURM tests (root only; they skip otherwise).
if [ "$(id -u)" = 0 ]; then
  bash tools/slurm_localhost.sh start || echo "warning: SLURM could not be started; the SLURM tests will skip"
fi

# LightGBM's OpenMP threads spin-wait otherwise, which is very slow on shared CI cores.
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"

venv="${REGENMAP_TEST_VENV:-.venv-test}"
python="$(command -v python || command -v python3)"
[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
py="$venv/bin/python"
"$py" -m pip install -q --disable-pip-version-check -e ".[dev,cluster]"
# the venv's console scripts (regenmap, dask) first on PATH, for the tests' subprocesses
export PATH="$PWD/$venv/bin:$PATH"
"$py" -m ruff check .
"$py" tools/typecheck.py
"$py" -m pytest "$@"
