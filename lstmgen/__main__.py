import sys

from lstmgen.cli import main

sys.exit(main())
