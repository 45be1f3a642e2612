import sys

from imageapi.cli import main

sys.exit(main())
