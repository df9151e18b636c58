"""A process's private folder goes when the process ends, also a pool worker's, which leaves
through os._exit and skips atexit."""

from __future__ import annotations

import multiprocessing
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor

import pytest

from graders.scratch import process_folder


@pytest.mark.parametrize("start", ["fork", "forkserver"])
def test_a_pool_workers_folder_is_removed_when_the_pool_closes(start):
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context(start)) as pool:
        folder = pool.submit(process_folder, "docker-course-test-").result()
        assert folder.is_dir()
    assert not folder.exists()


#: In a process of its own: the child runs every exit hook its parent registered.
FORKED_CHILD = """
import atexit, os
from graders.scratch import process_folder
folder = process_folder("docker-course-test-")
child = os.fork()
if child == 0:  # what a normal interpreter exit runs
    atexit._run_exitfuncs()
    os._exit(0)
os.waitpid(child, 0)
print(folder.is_dir())
"""


def test_a_forked_child_that_exits_normally_leaves_its_parents_folder_alone():
    done = subprocess.run([sys.executable, "-c", FORKED_CHILD], capture_output=True, text=True,
                          timeout=60, check=True)
    assert done.stdout.split() == ["True"], done.stdout + done.stderr
