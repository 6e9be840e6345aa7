#!/usr/bin/env bash
# Build the extension, install it into Blender as a user would, generate a head and render it:
# demo/head.blend and demo/head.png.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
ensure_venv
cd "$ROOT"
exec "$VENV/bin/python" scripts/demo.py --output-dir demo "$@"
