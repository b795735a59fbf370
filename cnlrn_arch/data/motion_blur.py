"""Synthetic camera shake: smooth random motion paths rasterised into blur
kernels, and a spatially varying blur that blends several of them.

``cnlrn make-demo-data`` uses it to imitate REDS' blur (the average of the
frames of a hand-held 240 fps video around the sharp middle one) on still photos.
"""

import cv2
import numpy as np

_STEPS = 64  # time steps of a path; it is sampled densely in between


def trajectory(rng, length, heading):
    """(N, 2) x, y positions, uniform in time, of a smooth random path ``length`` pixels long.

    The path starts along ``heading`` (radians); its angular velocity
    random-walks, so it bends smoothly like a shaking hand, and its speed
    drifts, so the kernel is brighter where the camera slowed down.
    """
    turn = np.cumsum(rng.normal(0, rng.uniform(0, 0.006), _STEPS))
    angle = heading + np.cumsum(turn)
    speed = np.exp(np.cumsum(rng.normal(0, 0.08, _STEPS)))
    steps = speed[:, None] * np.stack([np.cos(angle), np.sin(angle)], axis=1) * (length / speed.sum())
    points = np.concatenate([np.zeros((1, 2)), np.cumsum(steps, axis=0)])
    # several samples per pixel of path, so the rasterised kernel has no gaps
    t = np.linspace(0, _STEPS, 8 * int(np.ceil(length)) + _STEPS + 1)
    return np.stack([np.interp(t, np.arange(_STEPS + 1), points[:, i]) for i in range(2)], axis=1)


def motion_kernel(rng, length, heading):
    """Blur kernel of one random path: odd square float32 array, non-negative, summing to 1."""
    points = trajectory(rng, length, heading)
    # centre of mass on the centre pixel, so the blur does not shift the image
    points -= points.mean(axis=0)
    radius = int(np.ceil(np.abs(points).max())) + 1
    points += radius
    corner = np.floor(points).astype(int)
    frac = points - corner
    kernel = np.zeros((2 * radius + 1,) * 2)
    # bilinear splatting keeps the sub-pixel positions (and the centre of mass)
    for dx in (0, 1):
        for dy in (0, 1):
            weight = np.abs(1 - dx - frac[:, 0]) * np.abs(1 - dy - frac[:, 1])
            np.add.at(kernel, (corner[:, 1] + dy, corner[:, 0] + dx), weight)
    return (kernel / kernel.sum()).astype(np.float32)


def shake_kernels(rng, length_range):
    """2 to 4 kernels of one shake, for :func:`blur`.

    They share a path length drawn from ``length_range`` and a heading, each
    varied a little, as across a frame when the camera also rotates or an
    object moves on its own.
    """
    length = rng.uniform(*length_range)
    heading = rng.uniform(0, 2 * np.pi)
    return [
        motion_kernel(rng, length * rng.uniform(0.7, 1.3), heading + rng.normal(0, 0.4))
        for _ in range(rng.integers(2, 5))
    ]


def blur(img, kernels, rng):
    """Blur float32 HWC ``img`` with ``kernels`` blended by smooth random weight maps.

    Each kernel dominates around its own random anchor point; the weights sum
    to one everywhere and change gradually over the image.
    """
    h, w = img.shape[:2]
    y, x = np.mgrid[:h, :w].astype(np.float32)
    anchors = rng.uniform(0, 1, (len(kernels), 2)) * (w, h)
    spread = 0.3 * max(h, w)
    logits = np.stack([-((x - ax) ** 2 + (y - ay) ** 2) / (2 * spread**2) for ax, ay in anchors])
    weights = np.exp(logits - logits.max(axis=0))
    weights /= weights.sum(axis=0)
    # filter2D correlates rather than convolves: the same for a random kernel
    return sum(
        wk[..., None] * cv2.filter2D(img, -1, k, borderType=cv2.BORDER_REFLECT) for wk, k in zip(weights, kernels)
    )
