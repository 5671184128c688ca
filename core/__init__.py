"""MarketLab core: all logic, no streamlit. Runs headless in tests, bench, the CLI and on the GPU box."""
