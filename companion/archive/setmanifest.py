"""The set manifest: `set.json`, uploaded last (the commit marker).

The remote copy names no member (header encryption hides names, so must the manifest): contents are
listed by SHA-256 and size only. The full manifest, with member paths, torrent and snapshot ids, is
kept in the catalog and travels inside the encrypted archive as `SEEDWARD-SET.json`.

Format 2 (issue 19) lists the set's 7z archives (`archives`: name, method, volumes); a format 1 set
is one archive made of all its volumes.
"""

FORMAT = 2
INNER_NAME = "SEEDWARD-SET.json"


PRIVATE = ("members", "skipped", "deleted_manifests", "read_in_place")  # names and torrent ids


def public_manifest(doc: dict) -> dict:
    """The remote manifest: everything but member names and torrent ids (an info hash names a torrent)."""
    out = {k: v for k, v in doc.items() if k not in PRIVATE}
    out["contents"] = [{"sha256": m["sha256"], "size": m["size"]} for m in doc["members"]]
    return out


def archives_of(doc: dict) -> list[dict]:
    """The set's 7z archives, each {"name", "method", "volumes": [names], "volume_size"} (volume_size:
    each archive's own since the compressed one is cut after compression; older sets: the set's)."""
    if doc.get("archives"):
        return doc["archives"]
    return [{"name": f"{doc['set_id']}.7z", "method": "mixed", "volumes": [v["name"] for v in doc["volumes"]]}]
