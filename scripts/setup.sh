#!/usr/bin/env bash
# Set up a fresh Debian/Ubuntu machine for napari-noise2detail: the system libraries napari's
# window needs (and Xvfb for headless tests), then .venv with the project, its test tools and
# PyQt6. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(xvfb xauth libgl1 libgl1-mesa-dri libegl1 libxkbcommon-x11-0 libxcb-icccm4
  libxcb-image0 libxcb-keysyms1 libxcb-randr0 libxcb-render-util0 libxcb-xinerama0
  libxcb-xfixes0 libxcb-shape0 libxcb-cursor0 libfontconfig1 libdbus-1-3)

if command -v apt-get >/dev/null 2>&1; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  echo "== system libraries (apt-get)"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${APT_PACKAGES[@]}" >/dev/null
else
  echo "== no apt-get here: install OpenGL, xcb and (for tests) Xvfb with your package manager"
fi

echo "== Python environment (.venv)"
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
# The CPU build of torch goes in first: the project asks only for torch>=2.1 (so users keep
# their CUDA build), and pip resolving that range with no torch present fetches a multi-GB
# CUDA build. TORCH_SPEC chooses another build; its words are split, so it may hold pip
# options. The grep hides pip's notes about local package folders some machines configure;
# pip's own exit status still counts.
.venv/bin/python -m pip install -q --disable-pip-version-check ${TORCH_SPEC:-torch==2.13.0} 2>&1 | { grep -v '^WARNING: Location' || true; }
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[testing,pyqt6,cluster]" 2>&1 | { grep -v '^WARNING: Location' || true; }
.venv/bin/python -c "import napari_noise2detail as n; print('== ready: napari-noise2detail', n.__version__, 'on', n.describe_device())"
