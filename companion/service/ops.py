"""The control ops' arguments: one JSON Schema per op, checked before the op runs.

`schema(**fields)` builds an op's schema (every field optional unless listed in `required`,
no unknown field); features pass theirs to `service.register_op(name, fn, schema)` as plain
dicts. A message that does not fit gets one line: "OP: FIELD: what is wrong".
"""

from ..control import ControlError

SQLITE_MAX = 2 ** 63 - 1  # an id or count past this cannot even be looked up

ID = {"type": "string", "pattern": "^[0-9a-fA-F]{1,64}$"}  # a torrent id or any unique prefix
TEXT = {"type": "string", "maxLength": 4096}
COUNT = {"type": "integer", "minimum": 0, "maximum": SQLITE_MAX}


def schema(required: tuple = (), **fields) -> dict:
    return {"type": "object", "properties": {"op": {"type": "string"}, **fields},
            "required": ["op", *required], "additionalProperties": False}


BUILTIN = {
    "ping": schema(),
    "status": schema(),
    "dashboard": schema(),
    "subscribe": schema(),
    "jobs": schema(),
    "job_history": schema(limit=COUNT),
    "hook": schema(("event",), event={"enum": ["added", "finished"]},
                   hash={"type": "string", "maxLength": 64}, hash_v2={"type": "string", "maxLength": 64},
                   name=TEXT, save_path=TEXT, content_path=TEXT,
                   instance={"type": "string", "maxLength": 40}),  # several qBittorrent instances: which one
    "events": schema(since=COUNT, limit=COUNT, last=COUNT, torrent_id=ID, after=TEXT),
    "action": schema(("action", "id"), action={"enum": ["verify", "snapshot", "heal", "drill", "stop", "start"]},
                     id=ID),
    "detail": schema(("id",), id=ID),
    "pieces": schema(("id",), id=ID),
}


class Validators:
    """Compiled schemas by op name (jsonschema is imported once, by the service)."""

    def __init__(self):
        import jsonschema

        self._jsonschema = jsonschema
        base = jsonschema.Draft202012Validator
        # JSON Schema counts 1.0 as an integer; an id, a count or a limit here is an int, nothing else
        checker = base.TYPE_CHECKER.redefine(
            "integer", lambda _checker, value: isinstance(value, int) and not isinstance(value, bool))
        self._cls = jsonschema.validators.extend(base, type_checker=checker)
        self._by_op: dict = {}

    def add(self, op: str, op_schema: dict) -> None:
        self._cls.check_schema(op_schema)
        self._by_op[op] = self._cls(op_schema)

    def check(self, message: dict) -> None:
        """Raise ControlError naming the op, the field and the problem; unknown ops included."""
        op = message["op"]
        validator = self._by_op.get(op)
        if validator is None:
            raise ControlError(f"unknown op {op!r}")
        error = self._jsonschema.exceptions.best_match(validator.iter_errors(message))
        if error is None:
            return
        where = ".".join(str(p) for p in error.absolute_path)
        if error.validator == "additionalProperties":
            extra = sorted(set(message) - set(validator.schema.get("properties", {})))
            raise ControlError(f"{op}: unknown field {extra[0]!r}" if extra else f"{op}: {error.message}")
        if error.validator == "required":
            raise ControlError(f"{op}: {error.message}")
        value = repr(error.instance)
        raise ControlError(f"{op}: {where or 'request'}: {value[:60]} is not {_expected(error)}")


def _expected(error) -> str:
    kind = error.validator
    rule = error.validator_value
    if kind == "type":
        return f"{'an' if rule[0] in 'aeiou' else 'a'} {rule}"
    if kind == "enum":
        return "one of " + ", ".join(map(str, rule))
    if kind in ("minimum", "maximum"):
        return f"{'at least' if kind == 'minimum' else 'at most'} {rule}"
    if kind == "maxLength":
        return f"at most {rule} characters"
    if kind == "maxItems":
        return f"at most {rule} items"
    if kind == "pattern":
        return "hex digits (a torrent id or a unique prefix)" if rule == ID["pattern"] else f"matching {rule}"
    return f"valid ({error.message})"
