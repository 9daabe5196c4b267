"""patchgate: vulnerability deadlines, signed releases, phased rollouts with health gates,
and A/B devices that revert on their own, with the evidence the EU CRA asks for."""

__version__ = "0.1.0"
