"""Generative video-to-audio models run by tiva-bench (the TiVA model lives in ``tiva_bench.models.tiva``)."""
