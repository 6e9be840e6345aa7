#!/usr/bin/env bash
# Run the whole test suite (making .venv first if needed). Extra arguments go to pytest.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
ensure_venv
cd "$ROOT"
exec "$VENV/bin/python" -m pytest "$@"
