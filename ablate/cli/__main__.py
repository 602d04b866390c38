"""`python -m ablate.cli ...` (also what `torchrun -m ablate.cli` launches): same as `ablate ...`."""

import sys

from ablate.cli import main

sys.exit(main())
