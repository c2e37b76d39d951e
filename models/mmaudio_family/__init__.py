"""The MMAudio model family as this project's own diffusers components: everything around the
MM-DiT network (``models/generation/mmaudio.py``) that the official release needs to turn a waveform into the
network's latent and back (mel converter, mel VAE, BigVGAN / BigVGAN-v2 vocoders, composed by
``MMAudioCodec``), and the conditioning encoders (Synchformer, CLIP towers, tokenizer, video
preprocessing). Each module is written from the architecture, keeps the official state-dict key
names so official checkpoints load strictly through a ``from_official`` classmethod, and is proven
against the numbers of the official code in ``tests/fixtures/mmaudio-family`` (``parity_*``
modules recompute those fixtures from any directory).
"""
