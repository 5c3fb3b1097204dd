"""The set manifest: `set.json`, uploaded last (the commit marker).

The remote copy names no member (header encryption hides names, so must the manifest): contents are
listed by SHA-256 and size only. The full manifest, with member paths, torrent and snapshot ids, is
kept in the catalog and travels inside the encrypted archive as `SEEDWARD-SET.json`.
"""

FORMAT = 1
INNER_NAME = "SEEDWARD-SET.json"


def public_manifest(doc: dict) -> dict:
    """The remote manifest: everything but member names and ids."""
    out = {k: v for k, v in doc.items() if k not in ("members", "skipped")}
    out["contents"] = [{"sha256": m["sha256"], "size": m["size"]} for m in doc["members"]]
    return out


def volume_indices(doc: dict, names: list[str]) -> list[int]:
    index = {v["name"]: i for i, v in enumerate(doc["volumes"])}
    return [index[n] for n in names]
