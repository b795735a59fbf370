"""Developer tools beside the plugin: the speed and quality benchmarks and the GPU check, on one hardware module."""
