"""A small vectorised ray tracer over analytic shapes (numpy, float64).

It exists so the DVGO code is tested against images it did not make: nothing here shares
code with :mod:`hw4lib.nerf`. Shapes are closed solids (ellipsoid, capsule, capped cylinder);
shading is Blinn-Phong (diffuse + specular, so colour depends on the view direction) under
directional lights with hard shadows, plus a constant ambient term.

Intersection formulas follow the standard closed forms (quadratic in the ray parameter t);
float64 keeps thin shapes (radius ~0.01 seen from distance 4) free of cancellation noise.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

#: albedo(points (P,3), normals (P,3)) -> rgb (P,3) in [0, 1]
Albedo = Callable[[np.ndarray, np.ndarray], np.ndarray]

_EPS = 1e-6


def _dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.einsum("...i,...i->...", a, b)


def _normalize(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)


@dataclass
class Material:
    """Base colour (constant rgb or a texture function) and Blinn-Phong specular lobe."""

    albedo: tuple[float, float, float] | Albedo
    specular: float = 0.2
    shininess: float = 32.0

    def colour(self, p: np.ndarray, n: np.ndarray) -> np.ndarray:
        if callable(self.albedo):
            return np.asarray(self.albedo(p, n), dtype=np.float64)
        return np.broadcast_to(np.asarray(self.albedo, dtype=np.float64), p.shape)


class Shape:
    """A closed solid: ``intersect`` gives the nearest hit t > 0 (inf for a miss)."""

    material: Material

    def bounds(self) -> tuple[np.ndarray, float]:
        """A bounding sphere (centre, radius) used to skip rays cheaply."""
        raise NotImplementedError

    def intersect(self, o: np.ndarray, d: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def normal(self, p: np.ndarray) -> np.ndarray:
        raise NotImplementedError


@dataclass
class Ellipsoid(Shape):
    """Points x with |R^T (x - c) / radii| = 1; ``rotation`` columns are the local axes."""

    center: Sequence[float]
    radii: Sequence[float]
    material: Material
    rotation: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.c = np.asarray(self.center, np.float64)
        self.r = np.asarray(self.radii, np.float64)
        self.R = np.eye(3) if self.rotation is None else np.asarray(self.rotation, np.float64)

    def bounds(self) -> tuple[np.ndarray, float]:
        return self.c, float(self.r.max())

    def intersect(self, o: np.ndarray, d: np.ndarray) -> np.ndarray:
        # map to the unit sphere: o' = R^T (o - c) / r, d' = R^T d / r, solve |o' + t d'|^2 = 1
        ol = ((o - self.c) @ self.R) / self.r
        dl = (d @ self.R) / self.r
        a, b, c = _dot(dl, dl), _dot(ol, dl), _dot(ol, ol) - 1.0
        h = b * b - a * c
        s = np.sqrt(np.maximum(h, 0.0))
        t0, t1 = (-b - s) / a, (-b + s) / a
        t = np.where(t0 > _EPS, t0, t1)  # origin inside: the far root
        return np.where((h >= 0) & (t > _EPS), t, np.inf)

    def normal(self, p: np.ndarray) -> np.ndarray:
        pl = ((p - self.c) @ self.R) / self.r
        return _normalize((pl / self.r) @ self.R.T)  # gradient of |x_local / r|^2


@dataclass
class _AxisShape(Shape):
    """A solid around the segment a-b at ``radius``: what a capsule and a cylinder share."""

    a: Sequence[float]
    b: Sequence[float]
    radius: float
    material: Material

    def __post_init__(self) -> None:
        self.pa = np.asarray(self.a, np.float64)
        self.pb = np.asarray(self.b, np.float64)


@dataclass
class Capsule(_AxisShape):
    """All points within ``radius`` of the segment a-b (a sausage, a stem)."""

    def bounds(self) -> tuple[np.ndarray, float]:
        return (self.pa + self.pb) / 2, float(np.linalg.norm(self.pb - self.pa) / 2 + self.radius)

    def intersect(self, o: np.ndarray, d: np.ndarray) -> np.ndarray:
        ba, oa = self.pb - self.pa, o - self.pa
        baba = float(ba @ ba)
        bard, baoa = d @ ba, oa @ ba
        rdoa, oaoa = _dot(d, oa), _dot(oa, oa)
        ra2 = self.radius**2
        # infinite cylinder around the axis
        a = baba - bard * bard
        b = baba * rdoa - baoa * bard
        c = baba * oaoa - baoa * baoa - ra2 * baba
        h = b * b - a * c
        with np.errstate(divide="ignore", invalid="ignore"):
            t_body = (-b - np.sqrt(np.maximum(h, 0.0))) / a
        y = baoa + t_body * bard
        body = (h >= 0) & (y > 0) & (y < baba) & (t_body > _EPS)
        # otherwise the sphere cap on the side where the cylinder hit fell
        oc = np.where((y <= 0)[:, None], oa, o - self.pb)
        bc = _dot(d, oc)
        hc = bc * bc - (_dot(oc, oc) - ra2)
        t_cap = -bc - np.sqrt(np.maximum(hc, 0.0))
        cap = (hc > 0) & (t_cap > _EPS)
        t = np.where(body, t_body, np.where(cap, t_cap, np.inf))
        return np.where(np.isfinite(t), t, np.inf)

    def normal(self, p: np.ndarray) -> np.ndarray:
        ba, pa = self.pb - self.pa, p - self.pa
        h = np.clip((pa @ ba) / (ba @ ba), 0.0, 1.0)
        return _normalize(pa - h[:, None] * ba)


@dataclass
class Cylinder(_AxisShape):
    """A solid capped cylinder of ``radius`` with axis a-b (a pot, a base plate)."""

    def bounds(self) -> tuple[np.ndarray, float]:
        half = np.linalg.norm(self.pb - self.pa) / 2
        return (self.pa + self.pb) / 2, float(np.hypot(half, self.radius))

    def intersect(self, o: np.ndarray, d: np.ndarray) -> np.ndarray:
        ba, oc = self.pb - self.pa, o - self.pa
        baba = float(ba @ ba)
        bard, baoc = d @ ba, oc @ ba
        k2 = baba - bard * bard
        k1 = baba * _dot(oc, d) - baoc * bard
        k0 = baba * _dot(oc, oc) - baoc * baoc - self.radius**2 * baba
        h = k1 * k1 - k2 * k0
        hs = np.sqrt(np.maximum(h, 0.0))
        r2 = self.radius**2
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            t = (-k1 - hs) / k2  # the side (k2 = 0: a ray parallel to the axis never hits it)
            y = baoc + t * bard
            best = np.where((h >= 0) & (k2 > 0) & (y > 0) & (y < baba) & (t > _EPS), t, np.inf)
            for plane in (0.0, baba):  # the two flat caps: plane hit within the radius
                tc = (plane - baoc) / bard
                pc = oc + tc[:, None] * d
                rad2 = _dot(pc, pc) - (pc @ ba) ** 2 / baba
                ok = (rad2 <= r2) & (tc > _EPS)
                best = np.where(ok & (tc < best), tc, best)
        return np.where(np.isfinite(best), best, np.inf)

    def normal(self, p: np.ndarray) -> np.ndarray:
        ba, pa = self.pb - self.pa, p - self.pa
        L = np.linalg.norm(ba)
        axis = ba / L
        y = pa @ axis
        radial = pa - y[:, None] * axis
        rlen = np.linalg.norm(radial, axis=-1)
        # a point is on a cap when it is closer (in distance) to a cap plane than to the side
        on_cap = np.minimum(np.abs(y), np.abs(L - y)) < np.abs(self.radius - rlen)
        cap_n = np.where((y < L / 2)[:, None], -axis, axis)
        return np.where(on_cap[:, None], cap_n, _normalize(radial))


@dataclass
class Light:
    """A directional light; ``direction`` points from the scene towards the light."""

    direction: Sequence[float]
    color: Sequence[float] = (1.0, 1.0, 1.0)
    shadows: bool = True


@dataclass
class Scene:
    shapes: list[Shape]
    lights: list[Light]
    ambient: float = 0.25
    _bounds: list = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        self._bounds = [s.bounds() for s in self.shapes]


def _sphere_hits(
    o: np.ndarray, d: np.ndarray, centres: np.ndarray, radii: np.ndarray
) -> np.ndarray:
    """(K, M) mask: ray m (unit d) passes within radius k of centre k, ahead or from inside.

    A conservative cull in float32 (the caller pads the radii): b = (o - c).d and
    cc = |o - c|^2 - r^2 for all K spheres at once, via two small matrix products.
    """
    o32, d32, c32 = o.astype(np.float32), d.astype(np.float32), centres.astype(np.float32)
    b = c32 @ d32.T  # (K, M): c.d
    np.subtract((o32 * d32).sum(1)[None, :], b, out=b)  # o.d - c.d
    cc = c32 @ o32.T
    cc *= -2.0
    cc += (o32 * o32).sum(1)[None, :]
    cc += ((c32 * c32).sum(1) - radii.astype(np.float32) ** 2)[:, None]
    hit = b * b >= cc
    hit &= (b < 0) | (cc < 0)
    return hit


def nearest_hit(
    scene: Scene, o: np.ndarray, d: np.ndarray, any_hit: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Nearest t (inf = miss) and the index of the shape hit (-1 = none) for each ray."""
    t_best = np.full(len(o), np.inf)
    idx = np.full(len(o), -1, dtype=np.int64)
    centres = np.stack([c for c, _ in scene._bounds])
    radii = np.array([r for _, r in scene._bounds]) * 1.01 + 1e-3  # pad: float32 cull
    # cull against one sphere around the whole scene first, then per shape
    lo, hi = (centres - radii[:, None]).min(0), (centres + radii[:, None]).max(0)
    c_all = (lo + hi) / 2
    r_all = np.array([np.linalg.norm(hi - lo) / 2 * 1.01 + 1e-3])
    inside = np.flatnonzero(_sphere_hits(o, d, c_all[None], r_all)[0])
    mask = _sphere_hits(o[inside], d[inside], centres, radii)
    for k, shape in enumerate(scene.shapes):
        sel = inside[mask[k]]
        if any_hit:
            sel = sel[idx[sel] < 0]
        if sel.size == 0:
            continue
        t = shape.intersect(o[sel], d[sel])
        closer = t < t_best[sel]
        t_best[sel[closer]] = t[closer]
        idx[sel[closer]] = k
    return t_best, idx


def shade(scene: Scene, o: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Trace unit-direction rays: rgb (M, 3) in [0, 1] (0 on a miss) and a hit mask (M,)."""
    t, idx = nearest_hit(scene, o, d)
    hit = idx >= 0
    rgb = np.zeros((len(o), 3))
    if not hit.any():
        return rgb, hit
    hi = np.flatnonzero(hit)
    p = o[hi] + t[hi, None] * d[hi]
    n = np.empty_like(p)
    albedo = np.empty_like(p)
    ks = np.empty(len(hi))
    shin = np.empty(len(hi))
    for k in np.unique(idx[hi]):
        m = idx[hi] == k
        s = scene.shapes[k]
        n[m] = s.normal(p[m])
        albedo[m] = s.material.colour(p[m], n[m])
        ks[m], shin[m] = s.material.specular, s.material.shininess
    # two-sided: the normal faces the viewer
    n = np.where((_dot(n, d[hi]) > 0)[:, None], -n, n)
    view = -d[hi]
    diffuse = np.full((len(hi), 3), scene.ambient)
    spec = np.zeros((len(hi), 3))
    for light in scene.lights:
        L = _normalize(np.asarray(light.direction, np.float64))
        col = np.asarray(light.color, np.float64)
        ndl = np.maximum(n @ L, 0.0)
        vis = np.ones(len(hi))
        if light.shadows:
            lit = np.flatnonzero(ndl > 0)
            so = p[lit] + n[lit] * 1e-4
            _, sidx = nearest_hit(scene, so, np.broadcast_to(L, so.shape), any_hit=True)
            vis[lit[sidx >= 0]] = 0.0
        hvec = _normalize(L + view)
        lobe = np.maximum(_dot(n, hvec), 0.0) ** shin * (ndl > 0)
        diffuse += (ndl * vis)[:, None] * col
        spec += (ks * lobe * vis)[:, None] * col
    rgb[hi] = np.clip(albedo * diffuse + spec, 0.0, 1.0)
    return rgb, hit
