"""The machine a tool measures: its CPU, its GEMM peak and the FLOPs of CNLRN, which together give a floor."""
