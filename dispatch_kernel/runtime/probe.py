"""Load source text once in a throwaway process: `python -m dispatch_kernel.runtime.probe`.

A server that receives source text (REST, the CLI, a YAML file) must not run it, yet a deploy
should refuse text whose top level fails (an import that is not there, an exception) with a
clear error, as it did when the text ran in the server. The text is given as JSON on stdin
({"code", "filename", "handler"}); the answer is one JSON line on stdout: {"ok": true}, or
{"error": KIND, "message": TEXT} where KIND is "import", "run" (the top level raised) or
"handler" (no callable of that name). The process then exits, and
whatever the text did at its top level ends with it.
"""

from __future__ import annotations

import json
import sys

from .worker import HandlerError, _describe, load_code


def main() -> int:
    """Read the request, load the code, print the answer."""
    request = json.loads(sys.stdin.read())
    real_stdout, sys.stdout = sys.stdout, sys.stderr  # what the code prints is not the answer
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
    real_stdout.write(json.dumps(answer) + "\n")
    real_stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
