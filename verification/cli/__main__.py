"""``python -m verification.cli`` (and ``torchrun -m verification.cli``) runs the ``mpcert`` command line."""

import sys

from verification.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
