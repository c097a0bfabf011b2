"""``python -m pyutils.cli ...`` = ``sv ...`` (see :mod:`pyutils.cli.sv`)."""
import sys

from pyutils.cli.sv import main

sys.exit(main())
