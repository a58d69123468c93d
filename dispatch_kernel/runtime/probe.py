"""Load source text once in a throwaway process: `python -m dispatch_kernel.runtime.probe
REQUEST ANSWER`.

A server that receives source text (REST, the CLI, a YAML file) must not run it, yet a deploy
should refuse text whose top level fails (an import that is not there, an exception) with a
clear error, as it did when the text ran in the server. The text is given as a JSON file
({"code", "filename", "handler"}); the answer is written as JSON to ANSWER: {"ok": true}, or
{"error": KIND, "message": TEXT} where KIND is "import", "run" (the top level raised) or
"handler" (no callable of that name). The process then exits, and
whatever the text did at its top level ends with it.
"""

from __future__ import annotations

import json
import sys

from .worker import HandlerError, _describe, load_code


def main(request_path: str, answer_path: str) -> int:
    """Read the request, load the code, write the answer."""
    with open(request_path, encoding="utf-8") as handle:
        request = json.load(handle)
    try:
        load_code(request["code"], request["filename"], request["handler"])
    except HandlerError as exc:
        answer = {"error": "handler", "message": str(exc)}
    except ImportError as exc:
        answer = {"error": "import", "message": f"{type(exc).__name__}: {exc}"}
    except BaseException as exc:  # SystemExit included: the text's own doing
        answer = {"error": "run", "message": _describe(exc)}
    else:
        answer = {"ok": True}
    with open(answer_path, "w", encoding="utf-8") as handle:
        json.dump(answer, handle)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
