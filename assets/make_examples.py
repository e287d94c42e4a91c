"""Make the click-to-run example media ahead of time (the app also makes them at its first start).

    python assets/make_examples.py [--dir assets/generated]

Nothing is downloaded: the clips come from ffmpeg's synthetic sources, the image from PIL
(videollama_demo/ui/examples.py). Files that already exist are kept.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from anywhere in the clone

from videollama_demo.ui.blocks import UIOptions  # noqa: E402
from videollama_demo.ui.examples import EXAMPLES, ensure_examples  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=UIOptions().examples_dir,
                        help="where the app looks for them (default: assets/generated)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    ready = ensure_examples(args.dir)
    for path, example in ready:
        print(f"{path}  ({path.stat().st_size / 1024:.0f} KB): {example.label}")
    missing = len(EXAMPLES) - len(ready)
    if missing:
        print(f"{missing} example(s) could not be made; see the warnings above.", file=sys.stderr)
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
