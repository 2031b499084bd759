import sys

from mcs_apiserver.cli import main

sys.exit(main())
