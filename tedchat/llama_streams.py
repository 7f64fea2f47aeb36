"""llama-cpp-python's process-wide side effects, made one thread at a time.

Building a ``llama_cpp.Llama`` with ``verbose=False`` points file descriptors 1 and 2 at
``/dev/null`` and back (its ``suppress_stdout_stderr``: save a duplicate of each, ``dup2``
``/dev/null`` over it, restore the duplicate). Two threads doing that at once can leave fd 2 on
``/dev/null`` for good: the second saves the first one's ``/dev/null`` as "the original" and,
finishing last, restores it. The TUI draws on fd 2, so the screen froze for the rest of the
session while everything behind it ran on (issue 15: ``compare wafer-70b gpu-70b`` loads two
tokenizers on two threads at once; about half of the runs froze at "loading ...: starting").
The log callback swapped around a quiet load (``llama_log_set``) is process-wide too.

So every place in tedchat (and its bundled plugins) that builds a ``Llama`` or swaps the log
callback holds :data:`LLAMA_PROCESS_LOCK`. It is re-entrant: a block may build a model inside
another block.
"""

from __future__ import annotations

import threading

#: Held while llama-cpp-python redirects the standard streams or swaps its log callback.
LLAMA_PROCESS_LOCK = threading.RLock()
