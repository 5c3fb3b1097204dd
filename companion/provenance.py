"""Provenance sidecars: one JSON document per job output, checked against a JSON Schema.

The schema is `companion/schemas/provenance.schema.json` (shown in the README's `jobs` section).
"""

import json
from functools import lru_cache
from importlib import resources

from . import __version__
from .errors import Error

SCHEMA_ID = "seedward.provenance/1"


class ProvenanceInvalid(Error):
    """provenance sidecar {}: {}"""


@lru_cache(maxsize=1)
def schema() -> dict:
    return json.loads(resources.files("companion").joinpath("schemas/provenance.schema.json").read_text())


def sidecar(*, job, torrent, originals: list[dict], output: dict) -> dict:
    """The sidecar of one output. job: the catalog's jobs row; torrent: the original's torrents row;
    originals / output: {"path", "size", "sha256"}."""
    doc = {
        "schema": SCHEMA_ID,
        "job_id": job["id"],
        "output": output,
        "originals": originals,
        "original_torrent": {
            "id": torrent["id"],
            "name": torrent["name"],
            "info_hash_v1": torrent["info_hash_v1"],
            "info_hash_v2": torrent["info_hash_v2"],
        },
        "preflight_snapshot": job["preflight_snapshot"],
        "model": {"name": job["model_name"], "version": job["model_version"], "digest": job["model_digest"]},
        "prompt": job["prompt"],
        "parameters": json.loads(job["params"]),
        "operator": job["operator"],
        "command": json.loads(job["command"]),
        "sandbox": job["sandbox"],
        "started_at": job["started_at"],
        "ended_at": job["ended_at"],
        "exit_code": job["exit_code"],
        "seedward_version": __version__,
    }
    validate(doc, output["path"])
    return doc


def validate(doc: dict, where: str = "<sidecar>") -> None:
    """Raise ProvenanceInvalid naming the first field that breaks the schema."""
    import jsonschema  # here, not at import: it costs a third of a second at every CLI start

    validator = jsonschema.Draft202012Validator(schema(), format_checker=jsonschema.FormatChecker())
    error = jsonschema.exceptions.best_match(validator.iter_errors(doc))
    if error is not None:
        field = "/".join(map(str, error.absolute_path)) or "(root)"
        raise ProvenanceInvalid(where, f"{field}: {error.message}")


def encode(doc: dict) -> bytes:
    return (json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()
