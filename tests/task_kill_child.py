"""The child of ``tests/test_tasks_kill.py``: run (or resume) one 10-step task.

``python tests/task_kill_child.py DB URL SESSION SIDEFILE KIND SEED`` prints ``READY``
once the session is open, runs the task to its end with ``Session.run`` and prints
``DONE <stopped>``. The parent SIGKILLs it at random moments and starts it again.
"""

from __future__ import annotations

import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import srt
from rel_support.lifetime import end_by
from task_support import MODELS, SideFile, make, three_tools

SYSTEM = {"role": "system", "content": "You complete tasks with tools."}
USER = {"role": "user", "content": "Run the ten-step job."}
PAUSE_S = 0.02  # each tool run sleeps up to this long


def main() -> int:
    end_by()  # the parent kills and restarts it: an orphan ends by itself
    db, url, name, side, kind, seed = sys.argv[1:7]
    rng = random.Random(int(seed))
    with srt.Runtime(db) as rt:
        s = rt.session(name)
        if len(s) == 0:
            s.append(SYSTEM, USER)  # one atomic append: both or neither
        p = make(kind, url)
        print("READY", flush=True)
        tools = three_tools(SideFile(side), pause=lambda: rng.uniform(0.0, PAUSE_S))
        result = s.run(p, model=MODELS[kind], tools=tools)
        p.close()
        print("DONE", result.stopped, result.steps, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
