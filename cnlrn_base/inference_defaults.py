"""Defaults and names of ``cnlrn infer``, ``cnlrn serve``, ``cnlrn demo`` and the library behind them, torch-free.

The commands show them in ``--help`` before the library (which imports torch) is loaded;
the library takes its defaults from here too, so both say the same.
"""

# Larger inputs are refused unless --max-pixels allows them: 50 MP decode to at most 400 MB (16-bit RGBA)
# and upscale x4 to 800 MP, while a decompression bomb claims far more (a 292 KB PNG claims 10000x10000).
DEFAULT_MAX_PIXELS = 50_000_000
# LR pixels of context around each tile
DEFAULT_TILE_PAD = 16
# the tile side suggested where an image is large or memory ran out
SUGGESTED_TILE = 256
# appended to each output's name
DEFAULT_SUFFIX = '_cnlrn'
# libx264's quality scale: 0 lossless, 23 its default; 18 is commonly taken as visually lossless
DEFAULT_CRF = 18
MAX_CRF = 51
# --ext: the output images' type; auto keeps PNG, JPEG and WebP inputs' own type and writes PNG for the others
OUTPUT_EXTS = ('auto', 'png', 'jpg', 'webp')
DEFAULT_EXT = 'auto'
# the precisions a torch network can autocast to (--bf16, --fp16): the keys of runtime.speed.AMP_DTYPES
AUTOCAST_PRECISIONS = ('bf16', 'fp16')
# what runs the network: PyTorch, or an exported .onnx file through onnxruntime
BACKENDS = ('torch', 'onnxruntime')

# the web page (cnlrn serve)
DEFAULT_HOST, DEFAULT_PORT = '127.0.0.1', 7860
# uploads larger than this are refused by the server before they are stored
DEFAULT_MAX_UPLOAD_MB = 200
# the page restores short clips: a longer one would hold the queue for long (cnlrn infer restores any length)
DEFAULT_MAX_FRAMES = 300
# a job running longer is stopped, so one upload cannot hold the one-job queue
DEFAULT_JOB_MINUTES = 20
# uploads and results are removed this long after their last use (at once once a result is downloaded)
DEFAULT_KEEP_MINUTES = 30
# the server's temporary folder (uploads and results) stays under this: the oldest files go first, then jobs wait
DEFAULT_MAX_TEMP_MB = 4000

# cnlrn demo --quick: a smoke run for CI, a few iterations per stage
DEMO_QUICK_ITERS = 4
