"""The generation core: the MMAudio network, the audio-conditioned guidance branch, the NAG rule,
the flow ODE, the diffusers pipeline, bundle identity/loading and checkpoint conversion.
Model families (demo_family, mmaudio_family) plug into it through component interfaces.
"""
