"""Lock order in the seedward processes the tests start (`seedward serve`, the CLI verbs).

tests/conftest.py puts this folder and the checkout on PYTHONPATH and names a folder in
SEEDWARD_TEST_LOCKORDER; each Python process then checks lock order as the tests do
(tests/lockorder.py) and leaves the pairs it saw there when it exits. The test session joins them
and fails on a pair taken in both orders."""

import os

if os.environ.get("SEEDWARD_TEST_LOCKORDER"):
    try:
        from tests import lockorder
    except ImportError:  # not a seedward checkout's process
        pass
    else:
        lockorder.install()
        lockorder.save_at_exit(os.environ["SEEDWARD_TEST_LOCKORDER"])
