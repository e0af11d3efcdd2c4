"""Provider simulators: fake provider APIs that speak the real protocols (sandbox and tests)."""
