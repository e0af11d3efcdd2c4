"""Channel adapters: one package per provider, all behind `base.ChannelAdapter`."""
