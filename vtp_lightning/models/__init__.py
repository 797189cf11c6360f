"""Plain nn.Modules: encoder, bottleneck, decoders, text tower, heads, DiT. No Lightning here."""
