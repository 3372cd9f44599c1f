"""Logging: structlog's bound loggers, written through the standard :mod:`logging` module.

stateward writes nothing to stdout or stderr on its own. Every logger it uses is a structlog
logger around ``logging.getLogger("stateward.<part>")`` (``stateward.system``,
``stateward.store``, ``stateward.flows``, ``stateward.fleet``), and the ``stateward`` logger
has a :class:`logging.NullHandler`, so nothing shows until the application configures
logging, as with any library. Then levels, handlers and formatters work as usual:

* ``logging.basicConfig(level=logging.INFO)`` shows each event with its fields in logfmt
  style: ``store commit failed writes=3 error='...'``;
* every bound field (``address``, ``resource_id``, ``message_type``, ``task_id``, ...) is
  also an attribute of the :class:`logging.LogRecord`, so ``%(address)s`` in a format and
  JSON formatters see them as fields.

The loggers do not depend on ``structlog.configure``: an application's own structlog set-up
neither silences nor redirects them.
"""

from __future__ import annotations

import logging
from typing import Any

import structlog

__all__ = ("get_logger",)

logging.getLogger("stateward").addHandler(logging.NullHandler())

#: Attributes a LogRecord has already: a field of that name would make logging refuse the record.
_RESERVED = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


def _to_logging(_: Any, __: str, event_dict: structlog.typing.EventDict) -> dict[str, Any]:
    """The event as ``logging`` keyword arguments: a logfmt message, the fields as extra."""
    event = event_dict.pop("event", "")
    keywords = {k: event_dict.pop(k) for k in ("exc_info", "stack_info") if k in event_dict}
    extra = {(f"{k}_" if k in _RESERVED else k): v for k, v in event_dict.items()}
    fields = " ".join(f"{k}={v!r}" for k, v in event_dict.items())
    return {"msg": f"{event} {fields}" if fields else str(event), "extra": extra, **keywords}


_PROCESSORS: list[structlog.typing.Processor] = [
    structlog.stdlib.filter_by_level,
    structlog.contextvars.merge_contextvars,
    _to_logging,
]


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    """A structlog logger writing through the standard logger ``name``.

    stateward's own layers log with it under ``stateward.*``; an application's actors may
    use it too, to log the way the runtime does (``self.context.log`` is one, bound to the
    actor and its message).
    """
    logger: structlog.stdlib.BoundLogger = structlog.wrap_logger(
        logging.getLogger(name),
        processors=_PROCESSORS,
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    return logger
