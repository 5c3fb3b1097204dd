"""Drill records as JSON: the `seedward drill --json` keys plus what the record adds."""

import json


def drill_json(row) -> dict:
    return {
        "id": row["torrent_id"],
        "snapshot": row["snapshot_id"],
        "ok": row["state"] == "passed",
        "restore_seconds": row["restore_seconds"],
        "verify_seconds": row["verify_seconds"],
        "recheck_seconds": row["recheck_seconds"],
        "rto_seconds": row["rto_seconds"],
        "rpo_seconds": row["rpo_seconds"],
        "bytes": row["bytes"],
        "bad_pieces": json.loads(row["bad_pieces"]),
        "bad_files": json.loads(row["bad_files"]),
        "error": row["error"],
        "drill": row["id"],
        "state": row["state"],
        "reason": row["reason"],
        "swarm": bool(row["swarm"]),
        "swarm_seconds": row["swarm_seconds"],
        "started_at": row["started_at"],
        "finished_at": row["finished_at"],
    }
