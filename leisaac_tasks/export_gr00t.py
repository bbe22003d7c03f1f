"""``python -m leisaac_tasks.export_gr00t SRC OUT [--overwrite]``: a demo dataset in Isaac-GR00T's LeRobot v2.1 layout.

The work is in ``leisaac_tasks.demos.export_gr00t``; this module only gives the command a short name.
"""

import sys

from leisaac_tasks.demos.export_gr00t import main

if __name__ == "__main__":
    sys.exit(main())
