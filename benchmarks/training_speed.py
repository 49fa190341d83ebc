"""Training-step cost: pet_nc (direct forces, no backward through positions) vs pet
(conservative forces, double backward), and pet_m (both).

One optimisation step as metatrain's trainer does it (``evaluate_model`` on a batch,
MSE loss on energy and forces, backward, Adam step) on the 192-atom water box with
default PET hypers, float32, CPU, all in one process. Run:
``python benchmarks/training_speed.py [--repeat N] [--batch B]``.
"""

import argparse

import torch
from common import default_model, interleaved_medians, print_table, water_frames
from metatomic.torch import systems_to_torch
from metatrain.utils.evaluate_model import evaluate_model
from metatrain.utils.neighbor_lists import get_system_with_neighbor_lists


def step_function(architecture: str, frames):
    model = default_model(architecture).train()
    systems = [
        get_system_with_neighbor_lists(
            systems_to_torch(atoms, dtype=torch.float32),
            model.requested_neighbor_lists(),
        )
        for atoms in frames
    ]
    targets = model.dataset_info.targets
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)

    def step():
        optimizer.zero_grad()
        predictions = evaluate_model(model, systems, targets, is_training=True)
        loss = 0.0
        for tensor_map in predictions.values():
            block = tensor_map.block()
            loss = loss + (block.values**2).mean()
            for _, gradient in block.gradients():
                loss = loss + (gradient.values**2).mean()
        loss.backward()
        optimizer.step()

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--batch", type=int, default=2)
    args = parser.parse_args()
    frames = water_frames(args.batch)
    steps = {name: step_function(name, frames) for name in ("pet", "pet_nc", "pet_m")}
    timings = interleaved_medians(steps, args.repeat)
    reference = timings["pet"]
    rows = [
        {
            "architecture": name,
            "s/step": f"{t:.2f}",
            "speed-up vs pet": f"{reference / t:.2f}x",
        }
        for name, t in timings.items()
    ]
    print_table(
        f"Training step, batch of {args.batch} x 192-atom water, default PET", rows
    )


if __name__ == "__main__":
    main()
