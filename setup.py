"""CNLRN for BasicSR: install with ``make venv`` (pins torch; see README)."""

import os

from setuptools import find_packages, setup

# the plugin, its torch-free base, the developer tools and the commands (docs/architecture.md)
PACKAGES = ('cnlrn_arch', 'cnlrn_base', 'cnlrn_tools', 'cnlrn_cli')
here = os.path.dirname(os.path.abspath(__file__))
version = {}
with open(os.path.join(here, 'cnlrn_arch', 'version.py'), encoding='utf-8') as f:
    exec(f.read(), version)
with open(os.path.join(here, 'README.md'), encoding='utf-8') as f:
    long_description = f.read()

setup(
    name='cnlrn_arch',
    version=version['__version__'],
    description='CNLRN (cascaded non-local residual network for super-resolving blurry images) as a BasicSR plugin',
    long_description=long_description,
    long_description_content_type='text/markdown',
    packages=find_packages(include=[f'{p}{s}' for p in PACKAGES for s in ('', '.*')]),
    # The files the commands read travel as cnlrn_base's data: in git they stay where a clone's user finds them
    # (options/, experiments/pretrained_models/, tests/data/) and cnlrn_base holds a link to each; building the
    # wheel copies what the links point to, so cnlrn_base.project finds them through importlib.resources alike in a
    # clone and in an installed wheel (tests/test_packaging/ installs one).
    package_data={'cnlrn_base': ['options/**/*.yml', 'CNLRN_demo.pth', 'cnlrn_small_fixture.pt']},
    python_requires='>=3.9',
    install_requires=[
        'torch',
        'torchvision',
        'basicsr==1.4.2',
        'numpy',
        'opencv-python',
        'Pillow',
        'lmdb',
        'pyyaml',
        'tensorboard',
        'tqdm',
        'scikit-image',
        'matplotlib',
    ],
    # optional features, each imported lazily where it is used; `make venv` installs them all
    extras_require={
        'video': ['av'],  # cnlrn infer on video files (PyAV bundles FFmpeg's libraries)
        'safetensors': ['safetensors'],  # .safetensors weights
        'onnx': ['onnx', 'onnxruntime'],  # cnlrn export --onnx, cnlrn infer --backend onnxruntime
        'web': ['gradio', 'av'],  # cnlrn serve
        'spandrel': ['spandrel'],  # spandrel's ModelLoader (chaiNNer, ComfyUI) loads CNLRN weights (docs/spandrel.md)
        'test': ['pytest', 'ruff', 'selenium', 'import-linter'],
    },
    entry_points={
        'console_scripts': [
            'basicsr=cnlrn_cli.basicsr_runner:main',
            'cnlrn=cnlrn_cli.main:main',
        ],
        # the basicsr runner imports every package listed in this group
        'basicsr.plugins': ['cnlrn=cnlrn_arch'],
    },
)
