import sys

from faceage.cli.main import main

sys.exit(main())
