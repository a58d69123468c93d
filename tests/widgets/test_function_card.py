"""FunctionCard: name, status, driver, environment, requirements, deploy time, build log."""

import threading
import time

from dispatch_kernel.widgets import FunctionCard

from .helpers import add, eventually

SIX = "six==1.16.0"  # not in the test environment: deploying it builds one, with a log
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def uses_six():
    import six

    return six.__version__


def test_a_deployed_function_shows_where_and_how_it_runs(client):
    fn = client.deploy(add, timeout="5s", memory="256M", max_workers=3)

    card = FunctionCard(fn, deploy_seconds=1.234)

    assert "READY" in card.header.value and "<b>add</b>" in card.header.value
    details = card.details.value
    for text in ("local", "host (the caller&#x27;s own Python environment)", "5.00 s", "256 MiB",
                 "0–3", "deployed in", "1.23 s", "add (plain)"):
        assert text in details, text
    assert card.progress_log.layout.display == "none"  # no build, no log area


def test_a_build_streams_its_log_into_the_card(client):
    card = FunctionCard("uses_six")
    assert "DEPLOYING" in card.header.value and "deploying" in card.details.value
    assert card._repr_mimebundle_()["text/plain"] == "function uses_six: DEPLOYING"

    started = time.monotonic()
    fn = client.deploy(uses_six, requirements=[SIX], progress=card.progress)
    card.update(fn, detected_requirements=[], deploy_seconds=time.monotonic() - started)
    card.flush()

    assert any("six" in line for line in card.lines)
    assert "ready" in card.progress_log.value and card.progress_log.layout.display is None
    assert "READY" in card.header.value
    assert fn.function.image in card.details.value and SIX in card.details.value
    assert "deployed in" in card.details.value


def test_detected_requirements_are_marked(client):
    fn = client.deploy(add, requirements=["jsonschema", "cloudpickle"])

    card = FunctionCard(fn.function, detected_requirements=["cloudpickle"])

    assert "cloudpickle (detected)" in card.details.value
    assert "jsonschema (detected)" not in card.details.value and "jsonschema" in card.details.value


def test_progress_from_many_threads_is_kept_bounded_and_throttled(client):
    card = FunctionCard("busy", max_lines=100)
    renders = []
    card.progress_log.observe(renders.append, names="value")

    def chatter(tag):
        for i in range(500):
            card.progress(f"{tag} line {i}\n")

    threads = [threading.Thread(target=chatter, args=(t,)) for t in "abcd"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert eventually(lambda: len(renders) >= 1 and not card.flush())

    assert len(card.lines) == 100  # the newest 100 of 2,000 lines
    assert len(renders) < 20  # not one message per line
    shown = card.progress_log.value
    assert shown.count("line") == 12 and any(f"{t} line 499" in shown for t in "abcd")
    assert card._throttle.running
    card.close()
    assert not card._throttle.running


def test_the_display_bundle_reads_without_a_widget_frontend(client):
    fn = client.deploy(add)
    card = FunctionCard(fn, deploy_seconds=0.5)
    card.progress("step one")

    bundle = card._repr_mimebundle_()

    assert WIDGET_VIEW in bundle
    text = bundle["text/plain"]
    assert text.startswith("function add: READY")
    assert "  driver: local" in text and "  deployed in: 500 ms" in text and "  | step one" in text
    assert "<table" in bundle["text/html"] and "READY" in bundle["text/html"]
    card.close()
