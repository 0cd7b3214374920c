"""The TiVA model (Time-aligned Video-to-Audio): components, pipeline and presets."""
