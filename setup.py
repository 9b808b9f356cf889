"""robot_rl: train continuous-control policies in MuJoCo and run them on robots.

`sim/`, `hardware/` and `policies/` are top-level folders (they show the architecture) installed as
sub-packages of `robot_rl`, so their import names cannot collide with other distributions.
"""

from setuptools import find_packages, setup

FOLDERS = {"robot_rl": "robot_rl", "robot_rl.sim": "sim", "robot_rl.hardware": "hardware",
           "robot_rl.policies": "policies"}


def _packages() -> tuple[list[str], dict[str, str]]:
    packages, package_dir = [], {}
    for name, folder in FOLDERS.items():
        package_dir[name] = folder
        packages.append(name)
        for sub in find_packages(folder):
            packages.append(f"{name}.{sub}")
            package_dir[f"{name}.{sub}"] = f"{folder}/{sub.replace('.', '/')}"
    return packages, package_dir


PACKAGES, PACKAGE_DIR = _packages()

TRAIN = ["torch>=2.3,<3", "mujoco>=3.17,<3.18", "dm_control==1.0.50", "gymnasium[mujoco,box2d]>=1.0,<2",
         "pybullet>=3.2",  # the sim-to-sim twin (robot_rl.sim.pybullet_twin)
         "tensorboard>=2.14", "matplotlib>=3.7", "tqdm>=4.60",
         "imageio-ffmpeg>=0.5"]  # ships the ffmpeg that writes play's and eval.video's H.264 mp4s
ROS2 = ["ros-rclpy", "ros-sensor-msgs", "ros-std-msgs", "ros-rmw-fastrtps-cpp", "ros-diagnostic-msgs",
        "ros-geometry-msgs"]
ONNX = ["onnx>=1.15", "onnxruntime>=1.17"]
BENCH = ["stable-baselines3>=2.3", "sb3-contrib>=2.3"]
TEST = ["pytest>=7", "ruff>=0.5", "mypy>=1.10"]  # ruff and mypy (.ci/typecheck) run in CI
ATARI = ["ale-py>=0.9"]  # its wheel ships the ROMs: nothing downloads at run time
ROBOTICS = ["gymnasium-robotics==1.4.2"]  # the Shadow Hand block tasks (robot_rl.sim.shadow_hand)
DISTRIBUTED = ["ray[tune]>=2.60,<3"]  # robot-rl sweep (robot_rl.distributed); +~500 MB, ~60 s to install

setup(
    name="robot-rl",
    version="0.1.0",
    description="Train Gaussian policies with PPO/TRPO in MuJoCo and deploy them to robots.",
    python_requires=">=3.10",
    packages=PACKAGES,
    package_dir=PACKAGE_DIR,
    include_package_data=True,
    package_data={"robot_rl.sim": ["grids/*.txt", "assets/*.xml", "assets/*.yaml"],
                  "robot_rl.policies": ["zoo/*/*"]},
    install_requires=["numpy>=1.24", "pyyaml>=6", "pyserial>=3.5"],
    extras_require={
        "train": TRAIN,
        "ros2": ROS2,
        "onnx": ONNX,
        "bench": BENCH,
        "test": TEST,
        "atari": ATARI,
        "distributed": DISTRIBUTED,
        "robotics": ROBOTICS,
        "all": TRAIN + ROS2 + ONNX + BENCH + TEST + ATARI + DISTRIBUTED + ROBOTICS,
    },
    entry_points={"console_scripts": ["robot-rl=robot_rl.cli:main"]},
)
