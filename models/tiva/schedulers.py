"""Noise schedules and samplers of the TiVA model (diffusers schedulers, configured from ``TiVAConfig``).

Training noises latents with the DDPM schedule (AudioLDM's scaled-linear betas by default);
sampling uses a second-order multistep DPM-Solver: ``sampler="dpmsolver"`` is the solver the paper
cites (Lu et al. 2022, noise-prediction form), ``"dpmsolver++"`` its data-prediction variant.
"""

from __future__ import annotations

import warnings

import torch
from diffusers import DDPMScheduler, DPMSolverMultistepScheduler


class BoundedDPMSolver(DPMSolverMultistepScheduler):
    """DPM-Solver(++) whose data predictions are clipped to ``bounds``.

    At the first steps the data prediction ``(x_t - sqrt(1 - a) eps) / sqrt(a)`` multiplies the
    noise-prediction error by 1/sqrt(alpha-bar_T) (~84 for AudioLDM's schedule); clipping removes
    the resulting outliers (the static form of Imagen's thresholding, applied by diffusers through
    this hook; with ``dpmsolver`` the clipped data prediction is turned back into a noise
    prediction). The bounds must be symmetric about zero: clipping early, noisy predictions to an
    asymmetric range biases the sample's mean (measured: +1.0 on the tiny model).
    """

    bounds: tuple[float, float] = (-1.0, 1.0)

    def _threshold_sample(self, sample: torch.Tensor) -> torch.Tensor:
        return sample.clamp(*self.bounds)


def noise_schedule(cfg) -> DDPMScheduler:
    """The DDPM schedule used to noise training samples (``add_noise``, ``get_velocity``)."""
    return DDPMScheduler(**_schedule_kwargs(cfg))


def make_sampler(cfg, bounds: tuple[float, float] | None = None) -> DPMSolverMultistepScheduler:
    """The second-order multistep sampler named by ``cfg.sampler``; data predictions clipped to
    ``bounds`` when given (symmetric about zero)."""
    kwargs = dict(algorithm_type=cfg.sampler, solver_order=2, **_schedule_kwargs(cfg))
    if cfg.sampler == "dpmsolver":  # the original solver integrates down to the smallest noise level, not to zero
        kwargs["final_sigmas_type"] = "sigma_min"
    if bounds is not None and abs(bounds[0] + bounds[1]) > 1e-6 * max(1.0, abs(bounds[1])):
        raise ValueError(f"sampler bounds must be symmetric about zero, got {bounds}")
    with warnings.catch_warnings():  # diffusers marks algorithm_type="dpmsolver" deprecated (docs/MODEL.md)
        warnings.filterwarnings("ignore", message=".*dpmsolver.*deprecated", category=FutureWarning)
        if bounds is None:
            return DPMSolverMultistepScheduler(**kwargs)
        scheduler = BoundedDPMSolver(thresholding=True, **kwargs)
    scheduler.bounds = bounds
    return scheduler


def make_scheduler(cfg, sampler: bool = True, bounds: tuple[float, float] | None = None):
    """``make_sampler(cfg, bounds)``, or with ``sampler=False`` ``noise_schedule(cfg)``."""
    return make_sampler(cfg, bounds) if sampler else noise_schedule(cfg)


def _schedule_kwargs(cfg) -> dict:
    return dict(num_train_timesteps=cfg.train_timesteps, beta_schedule=cfg.beta_schedule, beta_start=cfg.beta_start,
                beta_end=cfg.beta_end, prediction_type=cfg.prediction_type)
