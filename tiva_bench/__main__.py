"""``python -m tiva_bench`` is the same as the ``tiva-bench`` console script."""

import sys

from tiva_bench.cli import main

if __name__ == "__main__":
    sys.exit(main())
