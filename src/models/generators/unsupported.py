"""BR-Gen's prompted inpainters that diffusers 0.42 cannot run: BrushNet and PowerPaint.

Both add a second UNet branch (BrushNet's "brush" UNet; PowerPaint v2 is BrushNet plus learned
task prompts) whose model class, ``BrushNetModel``, is not part of diffusers 0.42 (it lives in
the authors' forks and in community pipeline files that need that class). The registry keeps
the names so that a configuration naming them fails at once with this explanation rather than
deep inside a run; the README's generator table lists them.
"""

from __future__ import annotations

from typing import Any

from .base import GENERATORS, GeneratorNotSupportedError

BRUSHNET_NOT_SUPPORTED = (
    "brushnet: BrushNet needs the BrushNetModel class (a second, mask-conditioned UNet branch), which diffusers 0.42 "
    "does not provide; it exists only in TencentARC's diffusers fork / community code. Use sdxl-inpaint or "
    "sd-inpaint for a prompted inpainter, or install a diffusers with BrushNet and add an adapter."
)
POWERPAINT_NOT_SUPPORTED = (
    "powerpaint: PowerPaint v2 is built on BrushNet (BrushNetModel plus learned task-prompt tokens), which diffusers "
    "0.42 does not provide; PowerPaint v1 needs its own pipeline code from the authors' repository. Not supported here."
)


@GENERATORS.register("brushnet", description="BrushNet: not supported (no BrushNetModel in diffusers 0.42)",
                     pipeline="", supported=False, reason=BRUSHNET_NOT_SUPPORTED)
def build_brushnet(**_: Any) -> Any:
    """Always raises ``GeneratorNotSupportedError`` (see ``BRUSHNET_NOT_SUPPORTED``)."""
    raise GeneratorNotSupportedError(BRUSHNET_NOT_SUPPORTED)


@GENERATORS.register("powerpaint", description="PowerPaint: not supported (built on BrushNet)",
                     pipeline="", supported=False, reason=POWERPAINT_NOT_SUPPORTED)
def build_powerpaint(**_: Any) -> Any:
    """Always raises ``GeneratorNotSupportedError`` (see ``POWERPAINT_NOT_SUPPORTED``)."""
    raise GeneratorNotSupportedError(POWERPAINT_NOT_SUPPORTED)
