"""`python -m albertprep`: the `albertprep` command."""

import sys

from albertprep.launch import main

sys.exit(main())
