# Sourced by scripts/: create .venv and install pixdex into it (editable) with the given extras.
# Re-installs only when pyproject.toml changed since the last install.
ensure_venv() {
    local extras="${1:-}"
    local py="${PYTHON:-python3}"
    if [ ! -x .venv/bin/python ]; then
        "$py" -m venv .venv
        .venv/bin/python -m pip install -q --upgrade pip
    fi
    local stamp=".venv/.pixdex-installed-${extras:-base}"
    if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
        local spec="."
        [ -n "$extras" ] && spec=".[$extras]"
        .venv/bin/python -m pip install -q -e "$spec"
        touch "$stamp"
    fi
}
