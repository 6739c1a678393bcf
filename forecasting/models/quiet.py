"""TensorFlow's import without its start-up chatter: lines such as `oneDNN custom operations
are on` and the CPU-instruction notice are written to the process's stderr (file descriptor
2) before any log level applies, so every run that loads a network printed them. The import
runs with fd 2 caught; those known lines are dropped and anything else is passed on."""

from __future__ import annotations

import os
import re
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

NOISE = re.compile(r"absl::InitializeLog|oneDNN custom operations|cpu_feature_guard|"
                   r"To enable the following instructions|rebuild TensorFlow with the")


@contextmanager
def tensorflow_noise_filtered() -> Iterator[None]:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")  # its later INFO lines too
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as caught:
        os.dup2(caught.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            caught.seek(0)
            for line in caught.read().decode(errors="replace").splitlines(keepends=True):
                if not NOISE.search(line):
                    sys.stderr.write(line)
