"""Fine-tuning under GR00T-style freeze settings (tune_llm, tune_visual, tune_projector, tune_diffusion_model,
LoRA). Not built yet: see the training issue. The package exists so the layout matches the design card."""
