"""Plain value types: model specs and timeouts; pure, no I/O."""

from __future__ import annotations

import dataclasses
import typing
from types import MappingProxyType

from ._checks import is_int, is_number
from ._exceptions import InvalidRequestError
from ._messages import check_unicode

if typing.TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["DEFAULT_MODEL", "MODELS", "ModelSpec", "Timeouts", "resolve_model"]

DEFAULT_MODEL = "openchat_3.6"


def _check_positive_int(field: str, value: object) -> None:
    if not is_int(value) or value <= 0:
        raise InvalidRequestError(f"{field} must be a positive int, got {value!r}")


@typing.final
@dataclasses.dataclass(frozen=True, slots=True)
class ModelSpec:
    """A model as the /api/chat wire names it; only ``id`` and the token limit reach the server.

    Args:
        id: The model id the server knows, such as ``"openchat_3.6"``.
        name: The display name sent beside it.
        max_length: The deployment's maximum prompt length in characters.
        token_limit: The deployment's context size in tokens.
    """

    id: str
    name: str
    max_length: int
    token_limit: int

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id:
            raise InvalidRequestError(f"ModelSpec.id must be a non-empty str, got {self.id!r}")
        if not isinstance(self.name, str):
            raise InvalidRequestError(f"ModelSpec.name must be a str, got {self.name!r}")
        check_unicode("ModelSpec.id", self.id)
        check_unicode("ModelSpec.name", self.name)
        _check_positive_int("ModelSpec.max_length", self.max_length)
        _check_positive_int("ModelSpec.token_limit", self.token_limit)


#: The models openchat-ui deployments have served, by id.
MODELS: Mapping[str, ModelSpec] = MappingProxyType(
    {
        "openchat_3.6": ModelSpec("openchat_3.6", "OpenChat 3.6 (latest)", 24576, 8192),
        "openchat_v3.2_mistral": ModelSpec("openchat_v3.2_mistral", "OpenChat Aura", 24576, 8192),
    }
)


def resolve_model(model: object) -> ModelSpec:
    """Return the :class:`ModelSpec` for a model id or spec.

    Raises:
        InvalidRequestError: ``model`` is neither a known id nor a ``ModelSpec``.
    """
    if isinstance(model, ModelSpec):
        return model
    if isinstance(model, str):
        spec = MODELS.get(model)
        if spec is not None:
            return spec
    known = ", ".join(repr(name) for name in MODELS)
    raise InvalidRequestError(
        f"model must be a known model id ({known}) or a ModelSpec, got {model!r}"
    )


def _check_seconds(field: str, value: object) -> None:
    if value is None:
        return
    if not is_number(value) or value <= 0:
        raise InvalidRequestError(
            f"timeout.{field} must be a positive number of seconds or None, got {value!r}"
        )


@typing.final
@dataclasses.dataclass(frozen=True, slots=True)
class Timeouts:
    """How long each stage of a reply may take, in seconds; ``None`` means no limit.

    Args:
        connect: Establishing the connection (TCP, proxy and TLS), and likewise waiting for a
            free connection when the pool is full.
        read: The longest silence between two pieces of the reply.
        first_chunk: From sending a request to the first text of its reply, per attempt.
        total: From entering the stream (or calling ``complete()``) to the end of the reply,
            retries included.
    """

    connect: float | None = 10.0
    read: float | None = 60.0
    first_chunk: float | None = None
    total: float | None = None

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            _check_seconds(field.name, getattr(self, field.name))
