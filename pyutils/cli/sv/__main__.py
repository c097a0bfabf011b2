"""``python -m pyutils.cli.sv`` = ``sv``."""
import sys

from pyutils.cli.sv import main

sys.exit(main())
