"""``python -m leisaac_tasks.necessity DATASET [DATASET ...]``: the language-necessity report.

The work is in ``leisaac_tasks.demos.necessity``; this module only gives the command a short name.
"""

import sys

from leisaac_tasks.demos.necessity import main

if __name__ == "__main__":
    sys.exit(main())
