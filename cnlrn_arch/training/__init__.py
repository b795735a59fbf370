"""BasicSR's training and test pipelines with this plugin: the entry point, the overrides of basicsr where it has
no hook, resume, distributed start-up, experiment locks."""
