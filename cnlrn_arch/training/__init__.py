"""BasicSR's training and test pipelines with this plugin: the entry point, overrides, experiment locks."""
