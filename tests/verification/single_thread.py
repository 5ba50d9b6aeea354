"""One torch and one BLAS thread for the heavy certify tests (imported by those test modules).

The audit runs many small float64 ops; on the shared 2-core test machine more threads only
oversubscribe (measured: the certify tests take about twice as long with two threads).  The previous
settings are restored after the module, so no other test sees the change.
"""

import pytest
import torch
from threadpoolctl import threadpool_limits


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(1):
            yield
    finally:
        torch.set_num_threads(before)
