"""Install gluon_cnns: the classic CNNs as Gluon HybridBlocks, with tutorial-style training."""
import os

from setuptools import find_packages, setup

HERE = os.path.dirname(os.path.abspath(__file__))


def read_version():
    with open(os.path.join(HERE, "gluon_cnns", "_version.py")) as f:
        for line in f:
            if line.startswith("__version__"):
                return line.split("=")[1].strip().strip("\"'")
    raise RuntimeError("__version__ not found in gluon_cnns/_version.py")


setup(
    name="gluon_cnns",
    version=read_version(),
    description="Classic CNNs (LeNet ... DenseNet) as hybridizable MXNet Gluon blocks, "
    "with the d2l tutorial helpers made fast",
    long_description=open(os.path.join(HERE, "README.md")).read()
    if os.path.exists(os.path.join(HERE, "README.md")) else "",
    long_description_content_type="text/markdown",
    packages=find_packages(include=["gluon_cnns", "gluon_cnns.*"]),
    python_requires=">=3.8,<3.12",
    install_requires=[
        # mxnet, or a CUDA build such as mxnet-cu112 installed in its place (see README)
        "numpy>=1.17,<1.24",
        "gluoncv==0.10.5.post0",
        "matplotlib>=3.3",
        "Pillow>=8",
        "tqdm>=4.40",
    ],
    extras_require={
        # ONNX export; the pins and why: see requirements.txt.
        "onnx": ["onnx==1.14.1", "onnxruntime==1.18.1", "protobuf>=3.20.2,<8"],
    },
    entry_points={
        "console_scripts": [
            "gluon-cnns-train=gluon_cnns.cli.train:main",
            "gluon-cnns-launch=gluon_cnns.cli.launch:main",
            "gluon-cnns-predict=gluon_cnns.cli.predict:main",
            "gluon-cnns-export=gluon_cnns.cli.export:main",
            "gluon-cnns-pack=gluon_cnns.cli.pack:main",
            "gluon-cnns-report=gluon_cnns.cli.report:main",
        ],
    },
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
