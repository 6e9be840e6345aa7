# Sourced by demo.sh and test.sh: the one place that makes the project's virtualenv (.venv).
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
# bpy needs these X/GL libraries even headless (without them `import bpy` fails to load libX11 and libGL).
BPY_DEBIAN_PACKAGES=(libx11-6 libxrender1 libxfixes3 libxi6 libxkbcommon0 libsm6 libice6 libxext6 libgl1)

apt_install_missing() {
    command -v dpkg-query >/dev/null || return 0  # not Debian: these are the system's affair
    local missing=() package
    for package in "$@"; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "ok installed" || missing+=("$package")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    echo "setup: installing ${missing[*]}" >&2
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

python311() {
    local candidate
    for candidate in "${PYTHON:-}" python3.11 python3; do
        if [ -n "$candidate" ] && command -v "$candidate" >/dev/null \
            && "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
            echo "$candidate"
            return 0
        fi
    done
    echo "setup: Python 3.11 is needed (bpy 5.0 is built for it); set PYTHON=/path/to/python3.11" >&2
    return 1
}

# Make .venv from requirements.txt, again whenever requirements.txt changes.
ensure_venv() {
    apt_install_missing "${BPY_DEBIAN_PACKAGES[@]}"
    local stamp="$VENV/.requirements.txt"
    if [ -x "$VENV/bin/python" ] && cmp -s "$ROOT/requirements.txt" "$stamp"; then
        return 0
    fi
    if [ ! -x "$VENV/bin/python" ]; then
        local python
        python="$(python311)"
        "$python" -c 'import ensurepip' 2>/dev/null || apt_install_missing python3.11-venv
        "$python" -m venv "$VENV"
    fi
    echo "setup: installing requirements.txt into .venv" >&2
    "$VENV/bin/python" -m pip install --quiet --quiet -r "$ROOT/requirements.txt"
    cp "$ROOT/requirements.txt" "$stamp"
}
