"""``python -m socketio_streams``: the operator CLI."""
import sys

from .cli import main

sys.exit(main())
