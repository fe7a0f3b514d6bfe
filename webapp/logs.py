"""What reaches the log: phone numbers masked, codes never.

The attempts table is the one place that holds whole numbers; a log line
names a number by its last three digits (`mask_number`). Call sites mask what
they log, and `voice2fa serve` puts `MaskingFilter` on every handler it
installs (uvicorn's access log included) as a second line of defence: it
masks anything shaped like a phone number and blanks the `token=` of a Verify
URL, in the message, its arguments and a traceback.

A filter on a handler sees every record the handler emits, also those
propagated from child loggers; a filter on a logger would not.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from uvicorn.config import LOG_LEVELS

#: Loggers whose lines carry what must not be logged: httpx logs each request's
#: URL (a check's `?token=` is the code) at INFO, aiosqlite each query's
#: parameters at DEBUG. Nothing in them at INFO or DEBUG is worth that.
QUIET = ("httpx", "httpcore", "aiosqlite")

# A Verify check's code travels as a query parameter.
_TOKEN = re.compile(r"(?i)(\btoken=)[^&\s'\"]+")
# "+31612345678", "+31 6 12345678", "+31-6-…", and URL-encoded "%2B31…" ("+" or
# "%20" between digits inside a query string).
_PLUS_NUMBER = re.compile(r"(?:\+|%2[Bb])\d(?:(?:[ \-+]|%20)?\d){5,17}(?!\w)")
# A bare run of digits: a number without its "+" ("31612345678", "0612345678")
# or a code. Digits inside a word (hex ids) or after a "." (fractions) stay.
_BARE_DIGITS = re.compile(r"(?<![\w.])\d{6,}(?!\w)")


def quiet_loggers() -> None:
    """QUIET loggers no one has configured say warnings only (the app calls this; serve configures them)."""
    for name in QUIET:
        logger = logging.getLogger(name)
        if logger.level == logging.NOTSET:
            logger.setLevel(logging.WARNING)


def mask_number(number: str) -> str:
    """A phone number as a log line may show it: only its last three digits."""
    digits = re.sub(r"\D", "", number)
    return "***" + digits[-3:]


def _mask_plus(match: re.Match[str]) -> str:
    return mask_number(match.group(0).removeprefix("%2B").removeprefix("%2b"))


def _mask_bare(match: re.Match[str]) -> str:
    digits = match.group(0)
    # Eleven digits and more is an international number without its "+"; six to
    # ten may be a code, or a national number: blank them whole.
    return mask_number(digits) if len(digits) >= 11 else "*" * len(digits)


def mask_text(text: str) -> str:
    """`text` with codes in URLs blanked and anything shaped like a phone number masked."""
    text = _TOKEN.sub(r"\1***", text)
    text = _PLUS_NUMBER.sub(_mask_plus, text)
    return _BARE_DIGITS.sub(_mask_bare, text)


def _mask_value(value: object) -> object:
    return mask_text(value) if isinstance(value, str) else value


class MaskingFilter(logging.Filter):
    """Masks numbers and codes in every record a handler emits; drops none."""

    #: Loggers whose formatter reads the record's arguments one by one
    #: (uvicorn's AccessFormatter unpacks client, method, path, version, status).
    KEEP_ARGS = ("uvicorn.access",)

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name in self.KEEP_ARGS and isinstance(record.args, tuple):
            record.msg = _mask_value(record.msg)
            record.args = tuple(_mask_value(arg) for arg in record.args)
        else:
            # Arguments of any type (an exception, a dict, an int) are masked as
            # the text they become; `color_message` would format the old ones.
            record.msg = mask_text(record.getMessage())
            record.args = None
            record.__dict__.pop("color_message", None)
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask_text(record.exc_text)
        if record.stack_info:
            record.stack_info = mask_text(record.stack_info)
        return True


def serve_log_config(level: str) -> dict[str, Any]:
    """The logging of `voice2fa serve`: uvicorn's handlers and formats, the app's beside them, all masked.

    At "debug" (or "trace") every logger says everything, SQLAlchemy's and
    httpx's included, and the filter masks it; otherwise the QUIET loggers say
    warnings only, and SQLAlchemy keeps its own default (warnings).
    """
    number = LOG_LEVELS[level.lower()]  # uvicorn's names, "trace" among them
    level = level.upper()
    if number <= logging.DEBUG:
        chatty = {name: {"level": level} for name in (*QUIET, "sqlalchemy")}
    else:
        chatty = {name: {"level": level if number > logging.WARNING else "WARNING"} for name in QUIET}
    masked = {"filters": ["mask"]}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"mask": {"()": MaskingFilter}},
        "formatters": {
            "default": {
                "()": "uvicorn.logging.DefaultFormatter",
                "fmt": "%(levelprefix)s %(message)s",
                "use_colors": None,
            },
            "access": {
                "()": "uvicorn.logging.AccessFormatter",
                "fmt": '%(levelprefix)s %(client_addr)s - "%(request_line)s" %(status_code)s',
            },
            "app": {"format": "%(levelname)s %(name)s: %(message)s"},
        },
        "handlers": {
            "default": {
                "class": "logging.StreamHandler",
                "formatter": "default",
                "stream": "ext://sys.stderr",
                **masked,
            },
            "access": {"class": "logging.StreamHandler", "formatter": "access", "stream": "ext://sys.stdout", **masked},
            "app": {"class": "logging.StreamHandler", "formatter": "app", "stream": "ext://sys.stderr", **masked},
        },
        "loggers": {
            "uvicorn": {"handlers": ["default"], "level": level, "propagate": False},
            "uvicorn.error": {"level": level},
            "uvicorn.access": {"handlers": ["access"], "level": level, "propagate": False},
            **chatty,
        },
        "root": {"handlers": ["app"], "level": level},
    }
