#!/usr/bin/env bash
# Build the store packages of the extension: one zip per browser, from the one source manifest.
#
#   scripts/build-extension.sh            -> extension/dist/paperfeed-chrome.zip
#                                            extension/dist/paperfeed-firefox.zip
#
# Chrome's package drops the Firefox-only keys (browser_specific_settings, background.scripts);
# Firefox's drops background.service_worker, which Firefox ignores. Only the shipped files go in
# (manifest, src/, pages/, icons/): no tests, node_modules or lock files. The zips are
# reproducible (fixed timestamps, sorted entries). Needs python3 only.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ext="$(cd "$here/../extension" && pwd)"
dist="$ext/dist"
mkdir -p "$dist"

python3 - "$ext" "$dist" <<'PY'
import json, sys, zipfile
from pathlib import Path

ext, dist = Path(sys.argv[1]), Path(sys.argv[2])
SHIPPED = ["src", "pages", "icons"]
files = sorted(p for d in SHIPPED for p in (ext / d).rglob("*") if p.is_file() and not p.name.startswith("."))
source = json.loads((ext / "manifest.json").read_text())

def chrome(m):
    m = json.loads(json.dumps(m))
    m.pop("browser_specific_settings", None)
    m["background"].pop("scripts", None)
    return m

def firefox(m):
    m = json.loads(json.dumps(m))
    m["background"].pop("service_worker", None)
    return m

for name, variant in (("chrome", chrome), ("firefox", firefox)):
    out = dist / f"paperfeed-{name}.zip"
    tmp = out.with_suffix(".zip.tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
        def add(arcname, data):
            info = zipfile.ZipInfo(arcname, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            z.writestr(info, data)
        add("manifest.json", json.dumps(variant(source), indent=2) + "\n")
        for f in files:
            add(f.relative_to(ext).as_posix(), f.read_bytes())
    tmp.replace(out)  # write aside, then rename: never a half-written package
    print(f"{out.relative_to(ext.parent)}  {out.stat().st_size} bytes, {len(files) + 1} files")
PY
