#!/usr/bin/env python3
"""Image rate-distortion evaluation (same as ``codec eval``): see ``codec/eval_image.py``."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from codec.eval_image import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
