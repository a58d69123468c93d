"""Runs sent over HTTP to a function's runtime server behind something else: an OpenFaaS
gateway (drivers/openfaas.py) or a Kubernetes Service (drivers/kubernetes.py).

The runtime server in the function's image answers `POST /` with pickled Jobs in and pickled
Outcomes out (runtime/server.py); in front of it a gateway or a proxy passes the body through.
What comes back is read with load_answer, which accepts only outcomes: the far end runs the
function's code. A run is sent once and never retried (it may have started); what went wrong on
the way becomes the run's SystemError, in words.
"""

from __future__ import annotations

import pickle
import time
from typing import Any

from ..model import Function
from ..runtime.protocol import Job, Outcome, load_answer
from ..runtime.server import PICKLE_TYPE
from .pooled import failed_outcome

CONNECT_TIMEOUT = 5.0  # seconds to reach the gateway or the API server


class EngineDown(Exception):
    """The engine in front of the function could not be reached at all: no run was sent."""


def post_jobs(http: Any, url: str, function: Function, jobs: list[Job], headers: dict[str, str],
              where: str, oom_reason: Any = None, end_work: Any = None) -> list[Outcome]:
    """POST the jobs to `url` with urllib3's PoolManager `http`; one outcome per job, or one
    SystemError outcome for the first job when the answer is not outcomes.

    `where` names the far end in messages ("the OpenFaaS gateway"); `oom_reason()`, when
    given, is asked why a request failed (a pod OOMKilled) and its answer, if any, is the cause.
    `end_work()`, when given, is called once a request timed out, to end the work it left on
    the far end (the run goes on there otherwise); it says in words what it did ("" if nothing).
    EngineDown when nothing could be sent.
    """
    import urllib3

    sent = time.monotonic()
    body = pickle.dumps(jobs, protocol=5)
    timeout = urllib3.Timeout(connect=CONNECT_TIMEOUT, read=function.timeout)
    try:
        reply = http.request("POST", url, body=body, headers={**headers, "Content-Type": PICKLE_TYPE},
                             timeout=timeout, retries=False, preload_content=True)
    except urllib3.exceptions.ReadTimeoutError:
        # Ended first, while it still runs; a pod that was OOMKilled holds no run, so nothing is
        # ended then and the OOM report is looked for.
        ended = end_work() if end_work else ""
        cause = None if ended or not oom_reason else oom_reason()
        return [failed_outcome(jobs[0], sent, cause or f"the run timed out after {function.timeout:g}s "
                                                      f"(no answer through {where})" + (f"; {ended}" if ended else ""))]
    except (urllib3.exceptions.NewConnectionError, urllib3.exceptions.ConnectTimeoutError) as exc:
        raise EngineDown(f"{where} could not be reached: {exc}") from exc
    except urllib3.exceptions.HTTPError as exc:
        cause = oom_reason() if oom_reason else None
        return [failed_outcome(jobs[0], sent, cause or f"the connection through {where} broke during the run: {exc}")]
    if reply.status != 200:
        cause = oom_reason() if oom_reason else None
        text = reply.data[:300].decode(errors="replace").strip()
        return [failed_outcome(jobs[0], sent, cause or f"{where} answered {reply.status}: {text}")]
    try:
        return load_answer(reply.data)
    except Exception as exc:
        return [failed_outcome(jobs[0], sent, f"the function's server answered something other than outcomes "
                                              f"through {where}: {exc}")]


def batches(function: Function, jobs: list[Job]) -> list[list[Job]]:
    """Jobs in requests: one run per request when the function has a timeout (its deadline is
    then exactly the run's), else all together."""
    if function.timeout is None:
        return [jobs]
    return [[job] for job in jobs]


__all__ = ["CONNECT_TIMEOUT", "EngineDown", "batches", "post_jobs"]
