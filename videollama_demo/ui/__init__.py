"""The Gradio page. Uses only the engine's public API (`videollama_demo`); nothing imports `ui/`.

    demo = build_demo(load_pipeline("auto"), UIOptions(port=7860))
    launch_demo(demo, UIOptions(port=7860))
"""

from .blocks import UIOptions, build_demo, launch_demo
from .housekeeping import Upkeep
from .limits import HostLimits, parse_size

__all__ = ["HostLimits", "UIOptions", "Upkeep", "build_demo", "launch_demo", "parse_size"]
