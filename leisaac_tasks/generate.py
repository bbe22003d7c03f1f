"""``python -m leisaac_tasks.generate``: scripted demos as LeRobot datasets (see leisaac_tasks/demos/generate.py)."""

import sys

from leisaac_tasks.demos.generate import main

if __name__ == "__main__":
    sys.exit(main())
