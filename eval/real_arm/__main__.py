import sys

from eval.real_arm.cli import main

sys.exit(main())
