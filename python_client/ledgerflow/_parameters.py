"""Run parameters: class attributes of a flow, given on the command line as
``--name value`` and available in every step as ``self.name``."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ledgerflow._flow_config import has_deferred

if TYPE_CHECKING:
    from ledgerflow.datastore.content import ContentStore


class Recorded(Protocol):
    """What the run records a value with: a Parameter, or a config's ConfigRecord."""

    def record(self, value: Any, store: ContentStore) -> str: ...

    def restore(self, recorded: str, store: ContentStore) -> Any: ...


class JSONType:
    """Parameter type for JSON values: ``Parameter('cfg', type=JSONType)``."""


@dataclass(frozen=True)
class ParameterContext:
    """What a callable default is given (Metaflow's ``ParameterContext``): it is called
    when the run starts (or the flow is deployed), so a default can depend on who runs
    what: ``Parameter('owner', default=lambda ctx: ctx.user_name)``."""

    flow_name: str
    user_name: str
    parameter_name: str


class Parameter:
    """A typed run parameter: ``alpha = Parameter('alpha', default=0.01, help='...')``.

    The type is taken from ``type=``, else from the default (str when neither is given,
    or when the default is a function of a :class:`ParameterContext`). With
    ``separator=','`` the value is a list: the text split on it, each item of the type.
    A value comes from ``--name``, else the environment variable
    ``LEDGERFLOW_RUN_NAME`` (the name in capitals), else the default. A parameter
    without a default is required unless ``required=False``."""

    def __init__(
        self,
        name: str,
        *,
        default: Any = None,
        type: Any = None,
        help: str = "",
        required: bool | None = None,
        separator: str | None = None,
    ) -> None:
        if not name.isidentifier():
            raise ValueError(f"parameter name {name!r} must be a Python identifier")
        if separator is not None and (not isinstance(separator, str) or not separator):
            raise ValueError(f"parameter {name!r}: separator must be a non-empty string")
        self.name = name
        self.default = default
        example = default
        if separator is not None and isinstance(default, (list, tuple)):
            example = default[0] if default else None  # a list's items' type
        waits = example is None or self.default_is_function or has_deferred(default)
        inferred = None if waits else builtins_type(example)
        # A function's result is kept as it is unless type= says what it must be.
        self.type_given = type is not None
        self.type = type or inferred or str
        self.help = help
        self.required_given = required
        self.required = required if required is not None else default is None
        self.separator = separator

    def settle_default(self, value: Any) -> None:
        """Sets the default a config gave (``default=config.alpha``), once the configs
        are loaded, and the type it implies when ``type=`` gave none."""
        self.default = value
        example = value
        if self.separator is not None and isinstance(value, (list, tuple)):
            example = value[0] if value else None
        if not self.type_given:
            self.type = (builtins_type(example) if example is not None else None) or str
        if self.required_given is None:
            self.required = value is None

    @property
    def environment_variable(self) -> str:
        """Where a value may come from when ``--name`` is not given."""
        return f"LEDGERFLOW_RUN_{self.name.upper()}"

    @property
    def default_is_function(self) -> bool:
        """Whether the default is a function of a ParameterContext (not a value)."""
        return callable(self.default) and not isinstance(self.default, type)

    def default_value(self, context: ParameterContext) -> Any:
        """The default's value: a function's result, read as :meth:`convert` reads an
        option when it is text; else it must be of the declared type (any value when
        no ``type=`` was given)."""
        if not self.default_is_function:
            return self.convert(self.default)
        value = self.default(context)
        if value is None or isinstance(value, str):
            return self.convert(value)
        wanted = self.type if self.separator is None else list
        if self.type_given and self.type is not JSONType and not isinstance(value, wanted):
            raise ValueError(f"the default of --{self.name} gave {value!r}, not {wanted.__name__}")
        return value

    def convert(self, raw: Any) -> Any:
        """Turns a command-line string (or a default) into the parameter's value."""
        if raw is None:
            return None
        if self.separator is not None and isinstance(raw, str):
            return [self._convert_one(part) for part in raw.split(self.separator)]
        if self.separator is not None and isinstance(raw, (list, tuple)):
            return [self._convert_one(part) for part in raw]
        return self._convert_one(raw)

    def _convert_one(self, raw: Any) -> Any:
        if self.type is JSONType:
            return json.loads(raw) if isinstance(raw, str) else raw
        if self.type is bool and isinstance(raw, str):
            return raw.lower() in ("1", "true", "yes", "on")
        return self.type(raw)

    def record(self, value: Any, store: ContentStore) -> str:
        """The value as the run's RunStarted event records it (JSON text)."""
        return json.dumps(value)

    def restore(self, recorded: str, store: ContentStore) -> Any:
        """The value again, from what :meth:`record` wrote (for resume)."""
        return json.loads(recorded)


# The key of the JSON object an IncludeFile parameter is recorded as.
INCLUDE_REFERENCE = "ledgerflow_include_file"


class IncludeFile(Parameter):
    """A parameter whose value is the content of a local file, read when the run
    starts and stored with the run, so the run can be reproduced without the file.

    The content goes to the datastore (content-addressed, so the same file is stored
    once); the run's parameters record only its key, size and how to decode it, so a
    file of any size fits, and `resume` gives the step the same text or bytes."""

    def __init__(
        self,
        name: str,
        *,
        default: str | None = None,
        is_text: bool = True,
        encoding: str = "utf-8",
        help: str = "",
        required: bool | None = None,
    ) -> None:
        super().__init__(name, default=default, type=str, help=help, required=required)
        self.is_text = is_text
        self.encoding = encoding

    def convert(self, raw: Any) -> Any:
        if raw is None:
            return None
        path = Path(raw)
        if not path.is_file():
            raise ValueError(f"--{self.name}: file {raw!r} does not exist")
        data = path.read_bytes()
        return data.decode(self.encoding) if self.is_text else data

    def record(self, value: Any, store: ContentStore) -> str:
        if value is None:
            return json.dumps(None)
        data = value.encode(self.encoding) if isinstance(value, str) else bytes(value)
        reference = {
            "key": store.save_bytes(data),
            "size": len(data),
            "is_text": isinstance(value, str),
            "encoding": self.encoding,
        }
        return json.dumps({INCLUDE_REFERENCE: reference})

    def restore(self, recorded: str, store: ContentStore) -> Any:
        value = json.loads(recorded)
        if not isinstance(value, dict) or INCLUDE_REFERENCE not in value:
            if isinstance(value, dict) and set(value) == {"bytes"}:
                raise ValueError(
                    f"--{self.name}: this run predates stored files and kept only the size "
                    "of its binary file; run it again instead of resuming it"
                )
            return value  # an older run recorded the text itself
        reference = value[INCLUDE_REFERENCE]
        data = store.load(reference["key"], "raw") if reference["size"] else b""
        return data.decode(reference["encoding"]) if reference["is_text"] else data


def builtins_type(value: Any) -> Any:
    if isinstance(value, bool):
        return bool
    if isinstance(value, (int, float, str)):
        return type(value)
    return JSONType


def parameters_as_json(
    values: dict[str, Any], params: Mapping[str, Recorded], store: ContentStore
) -> dict[str, str]:
    """The parameters as RunStarted records them (files go to `store`, see IncludeFile)."""
    return {
        name: params[name].record(value, store) if name in params else json.dumps(value)
        for name, value in values.items()
    }


def parameters_from_json(
    recorded: Any, params: Mapping[str, Recorded], store: ContentStore
) -> dict[str, Any]:
    """The values of a recorded run's parameters again (for resume)."""
    return {
        name: params[name].restore(text, store) if name in params else json.loads(text)
        for name, text in recorded.items()
    }
