"""How failures end a task: what no retry can fix fails at once, the rest keeps Airflow's retries."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from airflow.sdk.exceptions import AirflowFailException


@contextmanager
def fail_fast() -> Iterator[None]:
    """Turn a fatal Zuora answer (bad credentials, an invalid field or filter) into
    `AirflowFailException`: retrying the task would only repeat it, minutes later."""
    from .hooks.zuora import ZuoraApiError  # the hook's module is heavy (see dag_factory)

    try:
        yield
    except ZuoraApiError as exc:
        if exc.fatal:
            raise AirflowFailException(f"{exc} (not retried: fix the connection or the configuration)") from exc
        raise
