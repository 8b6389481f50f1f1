#!/usr/bin/env python3
"""What dist/install.pyz carries: the launcher text, and in its payload (the shiv zipapp, stored
uncompressed, xz-compressed as a whole, base64) each dependency, each platform folder
`_actvt_platform/<arch>`, our own package and shiv's bootstrap.

For each part: its uncompressed size in the zipapp, and its share of the xz-compressed payload
(each part compressed alone with the build's preset, scaled to the real payload size: xz compresses
the parts together, so shares are an estimate; the totals are exact).

    python3 bench/size.py

Reads dist/install.pyz only (the payload is decoded and checked against its sha256); writes
bench/results/size.json."""

import base64
import collections
import hashlib
import io
import lzma
import os
import re
import sys
import zipfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common as C  # noqa: E402

PRESET = 6  # build.py: lzma.compress(data, preset=6)

DISTRIBUTIONS = {  # top-level names in site-packages -> what they belong to
    "installer": "installer (ours)", "requests": "requests", "urllib3": "urllib3", "idna": "idna",
    "certifi": "certifi", "charset_normalizer": "charset-normalizer", "cffi": "cffi (metadata)",
}


def part_of(name):
    """The part a zipapp entry belongs to."""
    if not name.startswith("site-packages/"):
        return "shiv bootstrap (_bootstrap, __main__, environment.json)"
    rest = name[len("site-packages/"):]
    top = rest.split("/", 1)[0]
    if top == "_actvt_platform":
        return "_actvt_platform/" + rest.split("/")[1]
    if top.endswith(".dist-info"):
        top = re.sub(r"-[^-]+\.dist-info$", "", top).lower().replace("-", "_")
    return DISTRIBUTIONS.get(top, top)


def platform_detail(name):
    """Inside _actvt_platform/<arch>: cryptography, each _cffi_backend, cffi.libs."""
    rest = name.split("/", 3)[3]
    if rest.startswith("_cffi_backend."):
        return "_cffi_backend " + rest.split(".")[1]
    return rest.split("/", 1)[0].replace(".dist-info", "")


def main() -> int:
    pyz = C.ensure_pyz()
    with open(pyz, "rb") as handle:
        text = handle.read()
    match = re.search(rb'^PAYLOAD = """\n(.*?)\n"""$', text, re.S | re.M)
    if not match:
        raise SystemExit("no payload in %s" % pyz)
    packed = base64.b64decode(match.group(1).replace(b"\n", b""))
    zipapp = lzma.decompress(packed)
    expected = re.search(rb'^PAYLOAD_SHA256 = "([0-9a-f]+)"', text, re.M).group(1).decode()
    assert hashlib.sha256(zipapp).hexdigest() == expected, "payload checksum mismatch"
    parts = collections.defaultdict(list)
    details = collections.defaultdict(lambda: collections.defaultdict(list))
    with zipfile.ZipFile(io.BytesIO(zipapp)) as archive:
        for info in archive.infolist():
            if info.is_dir():
                continue
            content = archive.read(info)
            part = part_of(info.filename)
            parts[part].append(content)
            if part.startswith("_actvt_platform/"):
                details[part][platform_detail(info.filename)].append(content)
    print("compressing each part alone (xz preset %d) ..." % PRESET, flush=True)
    xz = {part: len(lzma.compress(b"".join(blobs), preset=PRESET)) for part, blobs in parts.items()}
    xz_total = sum(xz.values())
    launcher_bytes = len(text) - len(match.group(1))
    rows = []
    for part in sorted(parts, key=lambda p: -sum(map(len, parts[p]))):
        raw = sum(map(len, parts[part]))
        share = xz[part] / xz_total
        row = {"part": part, "files": len(parts[part]), "uncompressed_bytes": raw, "xz_alone_bytes": xz[part],
               "share_of_payload": round(share, 4), "bytes_in_install_pyz": round(share * (len(text) - launcher_bytes))}
        if part in details:
            row["detail"] = {name: sum(map(len, blobs)) for name, blobs in sorted(details[part].items())}
        rows.append(row)
    print("the same zipapp with xz -9e and base85 (what a denser encoding would give) ...", flush=True)
    dense = lzma.compress(zipapp, preset=9 | lzma.PRESET_EXTREME)
    result = {
        "alternatives": {"xz_9e_bytes": len(dense), "xz_9e_base64_bytes": len(base64.b64encode(dense)),
                         "xz_9e_base85_bytes": len(base64.b85encode(dense))},
        "machine": C.machine(),
        "install_pyz_bytes": len(text),
        "launcher_text_bytes": launcher_bytes,
        "payload_base64_bytes": len(text) - launcher_bytes,
        "payload_xz_bytes": len(packed),
        "zipapp_bytes": len(zipapp),
        "zip_overhead_bytes": len(zipapp) - sum(r["uncompressed_bytes"] for r in rows),
        "parts": rows,
    }
    print("dist/install.pyz: %.2f MB = launcher %.1f kB + payload %.2f MB (base64 of %.2f MB xz of a %.2f MB zipapp)"
          % (len(text) / 1e6, launcher_bytes / 1e3, result["payload_base64_bytes"] / 1e6, len(packed) / 1e6,
             len(zipapp) / 1e6))
    alt = result["alternatives"]
    print("  denser: xz -9e %.2f MB, as base85 %.2f MB (%.0f%% of the payload now)"
          % (alt["xz_9e_bytes"] / 1e6, alt["xz_9e_base85_bytes"] / 1e6,
             100 * alt["xz_9e_base85_bytes"] / result["payload_base64_bytes"]))
    print("  %-58s %10s %8s %10s" % ("part", "unpacked", "share", "in file"))
    for row in rows:
        print("  %-58s %8.2f MB %7.1f%% %8.2f MB" % (row["part"], row["uncompressed_bytes"] / 1e6,
                                                     100 * row["share_of_payload"], row["bytes_in_install_pyz"] / 1e6))
    C.write_result("size", result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
