"""An example third-party interaction block for expfam: ``xy_gated``."""

from gated_block.block import GatedCoupling

__all__ = ["GatedCoupling"]
