"""Which training rays a step draws: uniformly, or partly where the error is (instant-ngp's
error-guided sampling).

The error map holds a running mean of the squared colour error of each ``tile`` x ``tile``
pixel block of each training view, fed by the rays every step renders. A share of each batch is
then drawn in proportion to its tile's error, the rest uniformly, so every ray stays in play
and steps go where the model is still wrong (for a sparse scene: fine structure such as a
microphone's grille, not the smooth body). The losses are not reweighted: like instant-ngp,
the hard pixels count more, which is the point. Off in every profile: on mic_800 the rays it
draws cross the object and cost twice the samples, and uniform steps reached the same PSNR
sooner (docs/experiments.md, 2026-12-06).
"""

from __future__ import annotations

import torch


class ErrorMap:
    """Error-guided draws over ``ray_ids`` (indices of the training rays, views of ``size``
    (H, W) stacked): a ray is drawn with probability proportional to its tile's error, as a
    tile (error x rays kept in it) and then one of its rays uniformly. The tiles' weights are
    rebuilt every ``refresh`` steps. Tiles of 16 px: 125k for 50 views at 800 px, a table (1 MB)
    the search walks in the cache; with 8 px tiles (500k) the search was 16x slower."""

    def __init__(
        self, ray_ids: torch.Tensor, size: tuple[int, int], tile: int = 16, refresh: int = 100
    ):
        H, W = size
        th, tw = -(-H // tile), -(-W // tile)
        view, pix = ray_ids // (H * W), ray_ids % (H * W)
        tile_of = view * (th * tw) + (pix // W // tile) * tw + (pix % W) // tile
        # numbered among the tiles that hold rays: a short table for the draw to search
        _, self.tile_of = torch.unique(tile_of, return_inverse=True)
        n_tiles = int(self.tile_of.max()) + 1 if ray_ids.numel() else 1
        self.by_tile = torch.argsort(self.tile_of, stable=True)  # positions grouped by tile
        self.count = torch.bincount(self.tile_of, minlength=n_tiles)
        self.start = torch.cumsum(self.count, 0) - self.count
        # unseen tiles start above any squared error in [0, 1]: each is drawn soon
        self.err = torch.full((n_tiles,), 1.0)
        self.err_at_refresh = self.err.clone()
        self.refresh, self.steps = refresh, 0
        self._cdf: torch.Tensor | None = None

    def draw(self, n: int, gen: torch.Generator) -> torch.Tensor:
        """``n`` positions in ``ray_ids``, each drawn in proportion to its tile's error."""
        if self.steps % self.refresh == 0:
            self.err_at_refresh = self.err.clone()
            self._cdf = None
        self.steps += 1
        if self._cdf is None:
            self._cdf = torch.cumsum(self.err_at_refresh.double() * self.count, 0)
        u = torch.rand(n, generator=gen, dtype=torch.float64) * self._cdf[-1]
        # right: a tile without kept rays (zero width) is never hit
        t = torch.searchsorted(self._cdf, u, right=True).clamp_max(self.count.numel() - 1)
        within = (torch.rand(n, generator=gen, dtype=torch.float64) * self.count[t]).long()
        return self.by_tile[self.start[t] + within.clamp_max(self.count[t] - 1)]

    def update(self, pos: torch.Tensor, sq_err: torch.Tensor, rate: float = 0.5) -> None:
        """Blend the squared errors ``sq_err`` of the rays at ``pos`` into their tiles."""
        t = self.tile_of[pos]
        self.err[t] = (1 - rate) * self.err[t] + rate * sq_err.detach().float().cpu()

    def state_dict(self) -> dict:
        return {"err": self.err, "err_at_refresh": self.err_at_refresh, "steps": self.steps}

    def load_state_dict(self, s: dict) -> None:
        self.err, self.err_at_refresh, self.steps = s["err"], s["err_at_refresh"], s["steps"]
        self._cdf = None


def draw_rays(
    n_all: int,
    n: int,
    gen: torch.Generator,
    errors: ErrorMap | None = None,
    share: float = 0.0,
) -> torch.Tensor:
    """Positions of a step's ``n`` rays among ``n_all``: uniform, except a ``share`` drawn by
    ``errors``."""
    n = min(n, n_all)
    if errors is None or share <= 0:
        return torch.randint(0, n_all, (n,), generator=gen)
    k = int(round(n * share))
    uniform = torch.randint(0, n_all, (n - k,), generator=gen)
    return torch.cat([uniform, errors.draw(k, gen)])
