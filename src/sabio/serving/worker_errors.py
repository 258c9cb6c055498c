"""The runtime errors an invocation gets when its worker fails it, shared by every way the
router reaches a worker (buffered, streamed) so clients see one wording for one failure."""

from __future__ import annotations

from sabio.errors import ModelError


def model_error(status: int, payload: bytes, log_group: str) -> ModelError:
    """The worker answered with an error status: SageMaker's ModelError with its message."""
    text = payload.decode("utf-8", "replace")[:4096]
    kind = "client" if status < 500 else "server"
    return ModelError(
        f'Received {kind} error ({status}) from primary with message "{text}". '
        f"See the log group {log_group} for more information.",
        OriginalStatusCode=status,
        OriginalMessage=text,
        LogStreamArn=log_group,
    )


def timed_out(variant: str, log_group: str) -> ModelError:
    """The worker did not answer within the invocation timeout."""
    return ModelError(
        f"Your invocation timed out while waiting for a response from container "
        f"{variant}. Review the latency metrics for each container, or increase "
        "the invocation timeout (SABIO_INVOCATION_TIMEOUT_SECONDS).",
        OriginalStatusCode=0,
        LogStreamArn=log_group,
    )


def worker_lost(variant: str, exc: BaseException, log_group: str) -> ModelError:
    """The worker closed the connection without an answer (it is being restarted)."""
    return ModelError(
        f"The worker of variant {variant} closed the connection without a "
        f"response ({type(exc).__name__}); it is being restarted.",
        OriginalStatusCode=0,
        LogStreamArn=log_group,
    )
