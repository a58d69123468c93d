"""In a real ipykernel: the widgets display with static fallbacks, and a RunsTable's updates,
made on its own thread while the kernel is idle, reach the frontend as comm messages."""

from __future__ import annotations

import os
import queue
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from jupyter_client.manager import KernelManager

SETUP = textwrap.dedent("""
    import dispatch_kernel as dk
    from IPython.display import display
    from dispatch_kernel.widgets import RunsTable

    client = dk.connect()

    def nap(seconds):
        import time
        time.sleep(seconds)
        return seconds

    fn = client.deploy(nap)
    table = RunsTable(client)
    display(table)
    print(table.table.model_id)
""")


@pytest.fixture
def kernel(home: Path) -> Iterator:
    manager = KernelManager(kernel_name="python3")
    manager.start_kernel(env={**os.environ, "DISPATCH_HOME": str(home)})
    client = manager.client()
    client.start_channels()
    try:
        client.wait_for_ready(timeout=60)
        yield client
    finally:
        client.execute("table.close(); client.close()")
        time.sleep(0.5)
        client.stop_channels()
        manager.shutdown_kernel(now=True)


def execute(kc, code: str, timeout: float = 60) -> list[dict]:
    """Run `code` and return its IOPub messages up to the kernel going idle."""
    msg_id = kc.execute(code)
    messages = []
    deadline = time.monotonic() + timeout
    while True:
        msg = kc.get_iopub_msg(timeout=max(0.1, deadline - time.monotonic()))
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        messages.append(msg)
        if msg["msg_type"] == "error":
            pytest.fail("\n".join(msg["content"]["traceback"]))
        if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            return messages


def test_runs_table_updates_reach_the_frontend_from_its_thread(kernel):
    setup = execute(kernel, SETUP)
    model_id = "".join(m["content"]["text"] for m in setup if m["msg_type"] == "stream").strip()
    (shown,) = [m["content"]["data"] for m in setup if m["msg_type"] == "display_data"]
    assert shown["application/vnd.jupyter.widget-view+json"]["model_id"]
    assert shown["text/plain"].startswith("0 run(s)") and "no runs yet" in shown["text/html"]

    def table_value(msg: dict) -> str | None:
        content = msg["content"]
        if (msg["msg_type"] == "comm_msg" and content.get("comm_id") == model_id
                and content["data"].get("method") == "update"):
            return content["data"]["state"].get("value")
        return None

    during = execute(kernel, "handle = fn.spawn(1.0)")  # returns at once; the run goes on
    idle_at = time.monotonic()
    seen = [(idle_at, v) for v in map(table_value, during) if v is not None]

    # Nothing runs in the kernel now: whatever arrives comes from the table's own thread.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not any("SUCCEEDED" in v for _, v in seen):
        try:
            value = table_value(kernel.get_iopub_msg(timeout=1))
        except queue.Empty:
            continue
        if value is not None:
            seen.append((time.monotonic(), value))
    assert seen and "SUCCEEDED" in seen[-1][1], seen
    assert seen[-1][0] - idle_at >= 0.5  # the run took 1 s: this update came while idle
    assert any("RUNNING" in value for _, value in seen)
